// qhost run as a subprocess: exit codes per error category, messages on
// stderr, command output on stdout. Only the test plugins are searched
// (QTOOL_NO_DEFAULT_PLUGIN_PATH=1, QTOOL_PLUGIN_PATH emptied).
#include <gtest/gtest.h>
#include <qsdk/plugin_abi.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

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

Result qhost(const std::string& args) {
  auto dir = std::filesystem::temp_directory_path();
  // The pid keeps concurrent runs (several build folders, ctest -j) apart.
  std::string tag = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
                    std::to_string(::getpid());
  std::string out = (dir / ("qhost_cli_" + tag + ".out")).string(), err = (dir / ("qhost_cli_" + tag + ".err")).string();
  std::string cmd = "QTOOL_PLUGIN_PATH= QTOOL_NO_DEFAULT_PLUGIN_PATH=1 " + kQhost + " " + args + " >" + out + " 2>" + err;
  int status = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// "plugin ABI 3": the version the messages name follows the SDK header.
const std::string kAbi = "plugin ABI " + std::to_string(QTOOL_PLUGIN_ABI_VERSION);

TEST(Cli, Version) {
  auto r = qhost("--version");
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(has(r.out, "qhost (qtool) 0.1.0\nSDK 0.1.0, " + kAbi + "\nLibTorch ")) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST(Cli, UsageErrorsExitWith1) {
  auto r = qhost("");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "error[usage]: qhost: no command given (hint: e.g. `qhost list`)\n")) << r.err;
  r = qhost("lst");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "error[usage]: qhost: unknown command 'lst' (hint: did you mean 'list'? commands: run, eval, "
                         "check, list, describe, check-plugin"))
      << r.err;
  r = qhost("list --kind quantizers");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "error[usage]: --kind: unknown kind 'quantizers' (hint: did you mean 'quantizer'? kinds: quantizer, "
                   "model, trick, scheduler, dataset)\n");
  r = qhost("check " + kData + "/good.toml --bogus");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "error[usage]: qhost check: ")) << r.err;
  EXPECT_TRUE(has(r.err, "--bogus")) << r.err;
  r = qhost("check");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "error[usage]: qhost check: missing experiment file (hint: see `qhost check --help`)\n");
  r = qhost("--log-level loud list");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "error[usage]: --log-level: unknown level 'loud' (hint: use one of trace, debug, info, warn, error, "
                   "critical, off)\n");
  r = qhost("check " + kData + "/good.toml --set data.batch_size");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "error[usage]: --set data.batch_size: expected key=value")) << r.err;
  r = qhost("run " + kData + "/good.toml --nproc 0");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "error[usage]: --nproc: 0 is not a process count (hint: use --nproc 1 or more)\n");
}

TEST(Cli, HelpEverywhere) {
  for (const char* cmd : {"", "run", "eval", "export", "check", "list", "describe", "check-plugin"}) {
    auto r = qhost(std::string(cmd) + " --help");
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_TRUE(has(r.out, "usage: qhost ")) << cmd << ": " << r.out;
    EXPECT_TRUE(has(r.out, "--plugin-path")) << cmd;
  }
  EXPECT_TRUE(has(qhost("run --help").out, "--resume"));
  EXPECT_TRUE(has(qhost("export --help").out, "--opset"));
  EXPECT_TRUE(has(qhost("check --help").out, "--set arg"));
}

TEST(Cli, ListShowsComponentsAndProviders) {
  auto r = qhost("list --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "quantizer/tq      test uniform quantizer (straight-through)  [testkit 1.2.3]\n"
            "model/tlinear     test two-layer perceptron                  [testkit 1.2.3]\n"
            "trick/tscale      test loss scaling                          [testkit 1.2.3]\n"
            "scheduler/tconst  test constant learning rate                [testkit 1.2.3]\n"
            "dataset/tnoise    test noise images                          [testkit 1.2.3]\n");
  r = qhost("--plugin-path " + kGood + " list --kind scheduler");
  EXPECT_EQ(r.out, "scheduler/tconst  test constant learning rate  [testkit 1.2.3]\n");
  r = qhost("list");
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "no plugins found; searched: \n");
}

TEST(Cli, ListReportsBrokenPluginsAndExitsWith3) {
  auto r = qhost("list --plugin-path " + kGood + ":" + kRoot + "/no_entry:" + kRoot + "/wrong_abi_version");
  EXPECT_EQ(r.rc, 3);
  EXPECT_TRUE(has(r.out, "quantizer/tq ")) << r.out;  // the good plugin is still listed
  EXPECT_TRUE(has(r.err, "error[plugin]: " + kRoot + "/no_entry/libqplug_no_entry.so: is not a qtool plugin")) << r.err;
  EXPECT_TRUE(has(r.err, "error[plugin]: " + kRoot + "/wrong_abi_version/libqplug_wrong_abi_version.so: plugin "
                         "'wrong_abi_version' was built for plugin ABI 99; this qhost uses " + kAbi))
      << r.err;
}

TEST(Cli, DescribeComponent) {
  auto r = qhost("describe quantizer/tq --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "quantizer/tq  test uniform quantizer (straight-through)\n"
            "provider: plugin 'testkit' 1.2.3 (" + kGood + "/libqplug_testkit.so)\n"
            "\n"
            "options:\n"
            "  option     type           default    allowed                                    doc\n"
            "  bits       int            4          [1, 8]                                     bit width\n"
            "  is_signed  bool           true       -                                          symmetric range around zero\n"
            "  clip       float          1.0        [0.001, 100]                               clipping value\n"
            "  mode       enum           \"nearest\"  one of \"nearest\" | \"floor\" | \"stochastic\"  rounding mode\n"
            "  scales     list of float  [1.0]      [0, 10]                                    per-group multipliers of clip\n"
            "  tag        string         \"\"         -                                          free-form label\n");
  r = qhost("describe dataset/tnoise --plugin-path " + kGood);
  EXPECT_TRUE(has(r.out, "  root     string  (required)")) << r.out;
}

TEST(Cli, DescribeErrors) {
  auto r = qhost("describe quantizer/tqq --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error[config]: unknown quantizer 'tqq' (hint: did you mean 'tq'? known quantizers: tq)\n");
  r = qhost("describe quantiser/tq --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "error[usage]: qhost describe: unknown kind 'quantiser' (hint: did you mean 'quantizer'? kinds: "
                   "quantizer, model, trick, scheduler, dataset)\n");
  r = qhost("describe dta");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "'dta' is neither KIND/NAME nor a section (hint: did you mean 'data'?")) << r.err;
}

TEST(Cli, DescribeHostSection) {
  auto r = qhost("describe optimizer");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "[optimizer]  optimizer\nprovider: qhost\n")) << r.out;
  EXPECT_TRUE(has(r.out, "  type ")) << r.out;
  EXPECT_TRUE(has(r.out, "one of \"sgd\" | \"adam\"")) << r.out;
}

TEST(Cli, CheckGoodExperiment) {
  auto r = qhost("check " + kData + "/good.toml --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, kData + "/good.toml: OK (plugins loaded: testkit)\n");
  r = qhost("check " + kData + "/good.toml --plugin-path " + kGood + " --print --set train.epochs=3");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "# Resolved by qhost 0.1.0 from " + kData + "/good.toml")) << r.out;
  EXPECT_TRUE(has(r.out, "\n[experiment]\n")) << r.out;
  EXPECT_TRUE(has(r.out, "name = \"good\"\n")) << r.out;
  // (keys in name order: the device options channels_last and cudnn_benchmark come first)
  EXPECT_TRUE(has(r.out, "\n[train]\nchannels_last = false\ncudnn_benchmark = false\nepochs = 3\n")) << r.out;
  EXPECT_TRUE(has(r.out, "\nprecision = \"fp32\"\n")) << r.out;
  EXPECT_TRUE(has(r.out, "\ndevice = \"auto\"\n")) << r.out;
  EXPECT_TRUE(has(r.out, "\n[[quant.override]]\nweight = \"none\"\n")) << r.out;
}

TEST(Cli, CheckReportsAllProblemsWithLocationsAndExitsWith2) {
  const std::string f = kData + "/five_mistakes.toml";
  auto r = qhost("check " + f + " --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "error[config]: " + f + ": 5 problems:\n"
            "  " + f + ":4:1: experiment.seed: expected int, got string \"seven\" (hint: the default is 0)\n"
            "  " + f + ":8:1: data.batchsize: unknown key (hint: did you mean 'batch_size'?)\n"
            "  " + f + ":10:1: model.type: unknown model 'tlinaer' (hint: did you mean 'tlinear'? known models: tlinear)\n"
            "  " + f + ":13:1: quant.weight.bits: 12 is outside [1, 8] (hint: bit width)\n"
            "  " + f + ":14:1: quant.weight.mode: \"nearst\" is not one of \"nearest\", \"floor\", \"stochastic\" (hint: "
            "did you mean 'nearest'?)\n");
}

TEST(Cli, CheckSetOverridesAndExtends) {
  auto r = qhost("check " + kData + "/good.toml --plugin-path " + kGood + " --set data.batch_size=0 --set model.width=2");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error[config]: " + kData + "/good.toml: 1 problem:\n  --set data.batch_size=0: data.batch_size: 0 "
                   "is below the minimum 1 (hint: training batch size per process)\n");
  r = qhost("check " + kData + "/base_error.toml --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error[config]: " + kData + "/base_error.toml: 1 problem:\n  " + kData +
                       "/base_error.toml:4:1: train.epochs: 0 is below the minimum 1 (hint: training epochs)\n");
  r = qhost("check " + kData + "/base_error.toml --plugin-path " + kGood + " --set train.epochs=2");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(Cli, CheckSyntaxAndMissingFiles) {
  auto r = qhost("check " + kData + "/syntax_error.toml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "error[config]: " + kData + "/syntax_error.toml:3:6: TOML syntax error: ")) << r.err;
  r = qhost("check " + kData + "/nope.toml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error[config]: " + kData + "/nope.toml: cannot read '" + kData +
                       "/nope.toml': no such file (hint: check the path)\n");
}

TEST(Cli, CheckPluginLoadFailureExitsWith3) {
  auto r = qhost("check " + kData + "/good.toml --plugin-path " + kRoot + "/no_entry");
  EXPECT_EQ(r.rc, 3);
  // The listed plugin (located in the TOML) and, since check loads everything, the broken one.
  EXPECT_EQ(r.err, "error[plugin]: 2 plugins failed to load:\n  " + kData +
                       "/good.toml:3:9: plugin 'testkit' (libqplug_testkit.so) not found in [" + kRoot +
                       "/no_entry] (hint: available plugins: no_entry)\n  " + kRoot +
                       "/no_entry/libqplug_no_entry.so: is not a qtool plugin (no build stamp: it has no .qtool_stamp "
                       "section) (hint: a plugin is a shared library built with QSDK_PLUGIN(...) from <qsdk/plugin.hpp> "
                       "(" + kAbi + "); a plugin built for plugin ABI 1 must be rebuilt)\n");
}

TEST(Cli, RunValidatesBeforeRunning) {
  auto r = qhost("run " + kData + "/five_mistakes.toml --plugin-path " + kGood + " --smoke");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "error[config]: " + kData + "/five_mistakes.toml: 5 problems:\n")) << r.err;
}

TEST(Cli, CheckPlugin) {
  auto r = qhost("check-plugin " + kGood + "/libqplug_testkit.so");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "plugin 'testkit' 1.2.3 (" + kGood + "/libqplug_testkit.so): loaded, stamp and schemas OK\n"
            "  ok  quantizer/tq: forward/backward on weight 16 levels, activation 16 levels\n"
            "  ok  model/tlinear: schema valid (1 options; not constructed: needs data or a model)\n"
            "  ok  trick/tscale: schema valid (1 options; not constructed: needs data or a model)\n"
            "  ok  scheduler/tconst: lr(0, 0) = 0.1\n"
            "  ok  dataset/tnoise: schema valid (3 options; not constructed: needs data or a model)\n");
  r = qhost("check-plugin testkit --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 0) << r.err;
  r = qhost("check-plugin " + kRoot + "/bad_schema/libqplug_bad_schema.so");
  EXPECT_EQ(r.rc, 3);
  EXPECT_EQ(r.err, "error[plugin]: " + kRoot + "/bad_schema/libqplug_bad_schema.so: plugin 'bad_schema' failed to "
                   "register its components: quantizer/bad: bad schema: option 'bits' has default 12 outside its "
                   "range (hint: fix the plugin's Options::schema())\n");
  r = qhost("check-plugin testkt --plugin-path " + kGood);
  EXPECT_EQ(r.rc, 3);
  EXPECT_TRUE(has(r.err, "(hint: did you mean 'testkit'? available plugins: testkit)")) << r.err;
}

}  // namespace
