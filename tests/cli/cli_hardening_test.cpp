// qhost as a subprocess fed hostile command lines, configs and plugins
// (issue 11): every case ends in error[<category>] with its exit code, never a
// signal; and a run behaves the same from any current folder.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

const std::string kQhost = QHOST_EXE;
const std::string kRoot = QTOOL_TEST_PLUGIN_ROOT;
const std::string kGood = kRoot + "/good";
const std::string kData = QTOOL_CLI_DATA;

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A scratch folder per test (pid-tagged: ctest -j and several build folders).
fs::path scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = fs::temp_directory_path() / ("qhost_hard_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// Runs `qhost args` in folder `cwd` (the test's own when empty).
Result qhost(const std::string& args, const std::string& cwd = "") {
  auto dir = fs::temp_directory_path();
  std::string tag = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
                    std::to_string(::getpid());
  std::string out = (dir / ("qhost_hard_" + tag + ".out")).string(), err = (dir / ("qhost_hard_" + tag + ".err")).string();
  std::string cmd = (cwd.empty() ? "" : "cd '" + cwd + "' && ") + "QTOOL_PLUGIN_PATH= QTOOL_NO_DEFAULT_PLUGIN_PATH=1 " +
                    kQhost + " " + args + " >" + out + " 2>" + err;
  int status = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Was a segfault (exit 139): the command word was looked for among the
// remaining arguments and erased at end().
TEST(CliHardening, LongOptionSpelledLikeACommandIsAUsageError) {
  for (const std::string args : {"--command list", "--command=list", "--comm list", "--args x list", "list --args x",
                                 "--command list list"}) {
    auto r = qhost(args + " --plugin-path " + kGood);
    EXPECT_EQ(r.rc, 1) << args << ": " << r.err;
    EXPECT_TRUE(has(r.err, "error[usage]: qhost: ")) << args << ": " << r.err;
  }
  auto r = qhost("--command list");
  EXPECT_EQ(r.err,
            "error[usage]: qhost: unrecognised option '--command' (hint: the command is a plain word: `qhost <command> "
            "[options]`, e.g. `qhost list`)\n");
}

std::string good_with(const std::string& extra) {
  std::string text = slurp(kData + "/good.toml");
  return text + extra;
}

TEST(CliHardening, NumbersGetLocatedErrors) {
  auto dir = scratch();
  // A huge array index was error[runtime]: stoul.
  auto r = qhost("check " + kData + "/good.toml --plugin-path " + kGood + " --set trick.99999999999999999999999.weight=1");
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_TRUE(has(r.err, "error[usage]: --set trick.99999999999999999999999.weight=1: trick is an array of 1 "
                         "elements; '99999999999999999999999' is not a valid index"))
      << r.err;
  // A subnormal was error[runtime]: stod while writing resolved.toml.
  write(dir / "tiny_lr.toml", good_with("[optimizer]\nlr = 1e-310\n"));
  r = qhost("check " + (dir / "tiny_lr.toml").string() + " --print --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "lr = 1e-310\n")) << r.out;
  // NaN passed every range check.
  write(dir / "nan.toml", good_with("[distributed]\nbucket_mb = nan\n"));
  r = qhost("check " + (dir / "nan.toml").string() + " --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(has(r.err, (dir / "nan.toml").string() + ":28:1: distributed.bucket_mb: nan is not a finite number"))
      << r.err;
}

TEST(CliHardening, DeepKeyAndControlCharacters) {
  auto dir = scratch();
  std::string key = "a";
  for (int i = 0; i < 100000; ++i) key += ".a";
  write(dir / "deep.toml", key + " = 1\n");
  auto r = qhost("check " + (dir / "deep.toml").string() + " --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 2) << r.err.substr(0, 300);
  EXPECT_TRUE(has(r.err, "error[config]: " + (dir / "deep.toml").string() + ":1:1: key with more than 64 dotted"))
      << r.err.substr(0, 300);
  // A carriage return and a control character in a value: resolved.toml stays TOML.
  r = qhost("check " + kData + "/good.toml --print --plugin-path " + kGood +
            " --set \"experiment.name=$(printf 'a\\rb\\001c\\td')\"");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "name = \"a\\rb\\u0001c\\td\"\n")) << r.out;
  write(dir / "resolved.toml", r.out);
  r = qhost("check " + (dir / "resolved.toml").string() + " --print --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "name = \"a\\rb\\u0001c\\td\"\n")) << r.out;
}

// Was std::terminate (exit 134) inside dlopen, taking every plugin with it.
TEST(CliHardening, PluginWithThrowingStaticInitialiserDoesNotTakeDownList) {
  auto r = qhost("list --plugin-path " + kGood + ":" + kRoot + "/static_init_throws");
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_TRUE(has(r.out, "quantizer/tq ")) << r.out;
  EXPECT_TRUE(has(r.err, "error[plugin]: " + kRoot +
                             "/static_init_throws/libqplug_static_init_throws.so: plugin 'static_init_throws': its "
                             "static initialisers threw an exception"))
      << r.err;
  EXPECT_TRUE(has(r.err, "cannot open /nonexistent/lookup.bin")) << r.err;
}

// Paths in a TOML are relative to that TOML, so `qhost run` and `qhost eval`
// of its checkpoint behave the same from any folder. Was: relative to the
// current folder first (data root, init_from), and the checkpoint kept the
// relative path.
TEST(CliHardening, RunAndEvalFromAnotherFolder) {
  auto dir = scratch();
  const fs::path exp_dir = dir / "project" / "exp";
  fs::create_directories(exp_dir / "data");
  fs::create_directories(dir / "elsewhere" / "data");  // a decoy with the same relative name
  const std::string plug = fs::relative(kGood, exp_dir).string();
  write(exp_dir / "base.toml",
        "[plugins]\npath = [\"" + plug + "\"]\nload = [\"testkit\"]\n"
        "[data]\ntype = \"tnoise\"\nroot = \"data\"\nbatch_size = 4\n");
  write(exp_dir / "exp.toml",
        "extends = \"base.toml\"\n"
        "[model]\ntype = \"tlinear\"\n"
        "[scheduler]\ntype = \"tconst\"\n"
        "[train]\nepochs = 1\n");
  const std::string expected = "tnoise from " + (exp_dir / "data").string();
  auto r = qhost("run " + (exp_dir / "exp.toml").string() + " --smoke --out " + (dir / "runs" / "r").string(),
                 (dir / "elsewhere").string());
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out + r.err, expected)) << r.out << r.err;
  EXPECT_TRUE(has(slurp((dir / "runs" / "r" / "resolved.toml").string()), "root = \"" + (exp_dir / "data").string()))
      << slurp((dir / "runs" / "r" / "resolved.toml").string());
  // Evaluated from two other folders: the same data folder, the same numbers.
  std::string numbers;
  for (const fs::path& cwd : {dir / "elsewhere", fs::path("/")}) {
    r = qhost("eval " + (dir / "runs" / "r" / "last.h5").string() + " --plugin-path " + kGood, cwd.string());
    ASSERT_EQ(r.rc, 0) << cwd << ": " << r.err << r.out;
    EXPECT_TRUE(has(r.out + r.err, expected)) << cwd << ": " << r.out << r.err;
    std::string top = r.out.substr(r.out.find("top1 "));
    if (numbers.empty()) numbers = top;
    EXPECT_EQ(top, numbers);
  }
}

}  // namespace

// A stale copy of a plugin earlier on the search path used to win silently.
TEST(CliHardening, DuplicatePluginOnTheSearchPathIsNamedInAWarning) {
  auto dir = scratch();
  fs::copy_file(kGood + "/libqplug_testkit.so", dir / "libqplug_testkit.so");
  auto r = qhost("list --plugin-path " + dir.string() + ":" + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "plugin 'testkit' is on the search path more than once: loading " + (dir / "libqplug_testkit.so").string() +
                             ", not " + kGood + "/libqplug_testkit.so"))
      << r.err;
  // The same folder named twice is one copy: no warning.
  r = qhost("list --plugin-path " + kGood + ":" + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(has(r.err, "more than once")) << r.err;
}
