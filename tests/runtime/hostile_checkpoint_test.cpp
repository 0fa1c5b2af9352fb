// Hostile checkpoints through the qhost binary (issue 11): hostile_checkpoints.py
// copies a valid checkpoint with one hostile change per file; `qhost eval` of each
// must end in `error[checkpoint]: <file>: ...` with exit code 5 (README, exit
// codes), never a signal, a hang or gigabytes of memory. Each child runs with
// its address space capped at 4 GiB, its peak RSS is read from wait4().
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr rlim_t kAddressSpace = rlim_t{4} << 30;  // an 84 GiB allocation fails instead of swapping
constexpr long kMaxRssKiB = 1L << 20;               // 1 GiB: a tiny model needs far less
constexpr double kMaxSeconds = 30;

struct Outcome {
  bool exited = false;
  int code = -1;
  int signal = 0;
  bool timed_out = false;
  long max_rss_kib = 0;
  double seconds = 0;
  std::string output;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs qhost with `args`, output to `log`, under the caps above.
Outcome run_qhost(const std::vector<std::string>& args, const std::string& log, double timeout_s = kMaxSeconds) {
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const rlimit as{kAddressSpace, kAddressSpace};
    ::setrlimit(RLIMIT_AS, &as);
    ::setenv("MALLOC_ARENA_MAX", "2", 1);  // per-thread arenas reserve address space, not memory
    std::vector<std::string> all{QHOST_EXE};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(QHOST_EXE, argv.data());
    ::_exit(127);
  }
  Outcome out;
  int status = 0;
  rusage usage{};
  for (;;) {
    const pid_t r = ::wait4(pid, &status, WNOHANG, &usage);
    if (r == pid) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
      ::kill(pid, SIGKILL);
      ::wait4(pid, &status, 0, &usage);
      out.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.exited = WIFEXITED(status);
  out.code = out.exited ? WEXITSTATUS(status) : -1;
  out.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  out.max_rss_kib = usage.ru_maxrss;
  out.output = read_text(log);
  return out;
}

std::string work() { return std::string(HOSTILE_WORK); }

// A valid checkpoint of tests/e2e/tiny.toml (a smoke run), written once per test process.
const std::string& template_checkpoint() {
  static const std::string path = [] {
    const std::string dir = work() + "/template_" + std::to_string(::getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto r = run_qhost({"run", std::string(E2E_DIR) + "/tiny.toml", "--smoke", "--out", dir},
                             dir + "/run.log", 600);
    EXPECT_EQ(r.code, 0) << r.output;
    return dir + "/last.h5";
  }();
  return path;
}

// The generator's files (sorted), written into a fresh folder.
std::vector<std::string> hostile_files(const std::string& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cmd = "/usr/bin/python3 " + std::string(QTOOL_TEST_SOURCE_DIR) +
                          "/tests/runtime/hostile_checkpoints.py " + template_checkpoint() + " " + dir + " > " + dir +
                          "/generator.log 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << read_text(dir + "/generator.log");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".h5") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST(HostileCheckpoint, EveryHostileFileIsACleanCheckpointError) {
  const std::string dir = work() + "/hostile_" + std::to_string(::getpid());
  const auto files = hostile_files(dir);
  ASSERT_GE(files.size(), 20u);
  // The template itself evaluates: the hostile change is what each file fails on.
  const auto ok = run_qhost({"eval", template_checkpoint()}, dir + "/template_eval.log");
  ASSERT_EQ(ok.code, 0) << ok.output;

  // What the error must say besides naming the file, for some of the files.
  const std::map<std::string, std::string> says{
      {"epoch_array", "must be a single value"},
      {"qtool_version_vlen_array", "must be a single value"},
      {"rng_text_fixed_1mib", "fixed-length string of 1048576 bytes"},
      {"hard_link_cycle", "already seen"},
      {"soft_link_cycle", "soft link"},
      {"external_link", "external link"},
      {"external_storage", "external raw files"},
      {"virtual_dataset", "virtual dataset"},
      {"huge_unwritten_weight", "[150000, 150000]"},
      {"many_unknown_entries", "200 unused entries"},
      {"integer_weight", "dtype"},
      {"plugins_path", "evil_plugins"},
      {"nonfinite", "NaN or infinite"},
  };
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    const auto r = run_qhost({"eval", file}, file + ".log");
    EXPECT_FALSE(r.timed_out) << "still running after " << kMaxSeconds << " s";
    EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "\n" << r.output;
    EXPECT_EQ(r.code, 5) << r.output;
    EXPECT_NE(r.output.find("error[checkpoint]: " + file), std::string::npos) << r.output;
    EXPECT_LT(r.max_rss_kib, kMaxRssKiB) << "peak RSS " << r.max_rss_kib / 1024 << " MiB";
    EXPECT_LT(r.seconds, kMaxSeconds);
    const auto it = says.find(fs::path(file).stem().string());
    if (it != says.end()) EXPECT_NE(r.output.find(it->second), std::string::npos) << r.output;
  }
  // A long list of unknown names is cut short.
  EXPECT_EQ(read_text(dir + "/many_unknown_entries.h5.log").find("stranger199"), std::string::npos);
}

TEST(HostileCheckpoint, FlagsAllowWhatTheUserVouchesFor) {
  const std::string dir = work() + "/flags_" + std::to_string(::getpid());
  const auto files = hostile_files(dir);
  ASSERT_FALSE(files.empty());
  // --allow-nonfinite: NaN/inf parameters load (for debugging).
  const auto nan = run_qhost({"eval", dir + "/nonfinite.h5", "--allow-nonfinite"}, dir + "/nonfinite.log");
  EXPECT_EQ(nan.code, 0) << nan.output;
  // --trust-checkpoint-plugins: the stored [plugins] path is used (an empty folder here).
  const auto trusted =
      run_qhost({"eval", dir + "/plugins_path.h5", "--trust-checkpoint-plugins"}, dir + "/plugins.log");
  EXPECT_EQ(trusted.code, 0) << trusted.output;
  // So is a folder the user put on the plugin search path (a run's own checkpoint).
  const auto own = run_qhost({"--plugin-path", dir + "/evil_plugins", "eval", dir + "/plugins_path.h5"},
                             dir + "/plugins_own.log");
  EXPECT_EQ(own.code, 0) << own.output;
  // A --set of [plugins] path is the user's own choice, not the checkpoint's.
  const auto replaced =
      run_qhost({"eval", dir + "/plugins_path.h5", "--set", "plugins.path=[]"}, dir + "/plugins_set.log");
  EXPECT_EQ(replaced.code, 0) << replaced.output;
}
