// Config validation against the host sections and the testkit plugin: every
// problem kind, all problems at once with file:line:column, resolved output.
#include "config/config.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "test_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

namespace qhost {
namespace {
using qsdk::Table;
using qsdk::Value;

const std::string kGood = std::string(QTOOL_TEST_PLUGIN_ROOT) + "/good";

// Validates `text` (written to `name`) and returns the problems as strings.
struct Checked {
  std::string file;
  std::vector<std::string> problems;
  Config config;
};

Checked check(const test::ScratchDir& dir, const std::string& text, const std::vector<std::string>& sets = {},
              const std::string& name = "exp.toml") {
  Checked out{dir.write(name, text), {}, Config()};
  out.config = Config::load(out.file, sets);
  Registry registry;
  PluginLoader loader(registry, {kGood});
  loader.load("testkit");
  for (const auto& p : out.config.check(registry, &loader)) out.problems.push_back(p.str());
  return out;
}

const std::string kMinimal =
    "[data]\n"
    "type = \"tnoise\"\n"
    "root = \"/data\"\n"
    "[model]\n"
    "type = \"tlinear\"\n";

TEST(ConfigValidate, FiveMistakesGiveFiveLocatedProblems) {
  test::ScratchDir dir;
  auto c = check(dir,
                 "[experiment]\n"            // 1
                 "seed = \"seven\"\n"        // 2  wrong type
                 "[data]\n"                  // 3
                 "type = \"tnoise\"\n"       // 4
                 "root = \"/data\"\n"        // 5
                 "batchsize = 64\n"          // 6  unknown key
                 "[model]\n"                 // 7
                 "type = \"tlinaer\"\n"      // 8  unknown model
                 "[quant.weight]\n"          // 9
                 "type = \"tq\"\n"           // 10
                 "bits = 12\n"               // 11 out of range
                 "mode = \"nearst\"\n");     // 12 not one of
  const std::string f = c.file;
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      f + ":2:1: experiment.seed: expected int, got string \"seven\" (hint: the default is 0)",
      f + ":6:1: data.batchsize: unknown key (hint: did you mean 'batch_size'?)",
      f + ":8:1: model.type: unknown model 'tlinaer' (hint: did you mean 'tlinear'? known models: tlinear)",
      f + ":11:1: quant.weight.bits: 12 is outside [1, 8] (hint: bit width)",
      f + ":12:1: quant.weight.mode: \"nearst\" is not one of \"nearest\", \"floor\", \"stochastic\" (hint: did you "
          "mean 'nearest'?)"}));
}

TEST(ConfigValidate, ValidateThrowsOneConfigErrorListingAll) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", kMinimal + "[train]\nepochs = 0\nevalevery = 2\n");
  Config c = Config::load(f);
  Registry registry;
  PluginLoader loader(registry, {kGood});
  try {
    c.validate(registry, loader);
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::config);
    EXPECT_EQ(std::string(e.what()),
              f + ": 2 problems:\n"
                  "  " + f + ":7:1: train.epochs: 0 is below the minimum 1 (hint: training epochs)\n"
                  "  " + f + ":8:1: train.evalevery: unknown key (hint: did you mean 'eval_every'?)");
  }
}

TEST(ConfigValidate, MissingRequiredOptionsTypesAndSections) {
  test::ScratchDir dir;
  auto c = check(dir,
                 "[data]\n"
                 "type = \"tnoise\"\n"
                 "[scheduler]\n"
                 "factor = 2.0\n"
                 "[[trick]]\n"
                 "type = 3\n");
  const std::string f = c.file;
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      f + ": model: missing required section [model] (hint: add [model] with type = \"<model>\"; known models: "
          "tlinear)",
      f + ":1:2: data: missing required option 'root' (string) (hint: data folder (required, unused))",
      f + ":3:2: scheduler: missing required key 'type' (the scheduler to use) (hint: known schedulers: tconst)",
      f + ":6:1: trick[0].type: expected string, got int 3 (hint: write type = \"<trick name>\")"}));
}

TEST(ConfigValidate, UnknownSectionsAndWrongShapes) {
  test::ScratchDir dir;
  auto c = check(dir, kMinimal +
                          "[optimiser]\n"       // 6
                          "lr = 0.1\n"          // 7
                          "scheduler = \"cosine\"\n"  // 8 (top-level value inside [optimiser]? no: a key of it)
                          );
  const std::string f = c.file;
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      f + ":6:2: optimiser: unknown section (hint: did you mean 'optimizer'?)"}));
  auto d = check(dir, "trick = \"tscale\"\nmodel = 3\n" + kMinimal.substr(0, kMinimal.find("[model]")), {}, "d.toml");
  EXPECT_EQ(d.problems, (std::vector<std::string>{
      d.file + ":1:1: trick: expected an array of tables ([[trick]]), got string \"tscale\"",
      d.file + ":2:1: model: expected a table ([model]), got int 3"}));
}

TEST(ConfigValidate, ListElementsAndFloatsAreChecked) {
  test::ScratchDir dir;
  auto c = check(dir, kMinimal +
                          "[quant.activation]\n"        // 6
                          "type = \"tq\"\n"             // 7
                          "scales = [1, 20, \"x\"]\n"   // 8
                          "clip = 2\n"                  // 9  int accepted for float
                          "is_signed = 1\n");           // 10
  const std::string f = c.file;
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      f + ":8:14: quant.activation.scales[1]: 20 is outside [0, 10] (hint: per-group multipliers of clip)",
      f + ":8:18: quant.activation.scales[2]: expected float, got string \"x\" (hint: the default is [1.0])",
      f + ":10:1: quant.activation.is_signed: expected bool, got int 1 (hint: the default is true)"}));
}

TEST(ConfigValidate, SetOverridesAreValidatedAndLocated) {
  test::ScratchDir dir;
  auto c = check(dir, kMinimal, {"data.batch_size=0", "model.width=wide", "optimizer.type=adamw"});
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      "--set data.batch_size=0: data.batch_size: 0 is below the minimum 1 (hint: training batch size per process)",
      "--set model.width=wide: model.width: expected int, got string \"wide\" (hint: the default is 8)",
      "--set optimizer.type=adamw: optimizer.type: \"adamw\" is not one of \"sgd\", \"adam\" (hint: did you mean "
      "'adam'?)"}));
}

TEST(ConfigValidate, ErrorsInABaseFilePointIntoTheBase) {
  test::ScratchDir dir;
  std::string base = dir.write("base.toml", kMinimal + "[train]\nepochs = -1\n");
  auto c = check(dir, "extends = \"base.toml\"\n[train]\nsave_every = 1\n");
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      base + ":7:1: train.epochs: -1 is below the minimum 1 (hint: training epochs)"}));
}

TEST(ConfigValidate, QuantOverridesMergeOntoTheDefault) {
  test::ScratchDir dir;
  auto c = check(dir, kMinimal +
                          "[quant.weight]\n"                      // 6
                          "type = \"tq\"\n"                       // 7
                          "bits = 2\n"                            // 8
                          "[[quant.override]]\n"                  // 9
                          "match = { role = [\"stem\", \"head\"] }\n"  // 10
                          "weight = \"none\"\n"                   // 11
                          "activation = \"none\"\n"               // 12
                          "[[quant.override]]\n"                  // 13
                          "match = { path = [\"layer1.*\"] }\n"   // 14
                          "weight = { bits = 4 }\n");             // 15
  ASSERT_TRUE(c.problems.empty()) << c.problems[0];
  const auto& quant = c.config.root().at("quant").as_table();
  const auto& ov = quant.at("override").as_list();
  ASSERT_EQ(ov.size(), 2u);
  EXPECT_EQ(ov[0].as_table().at("weight"), Value("none"));
  const auto& w = ov[1].as_table().at("weight").as_table();
  EXPECT_EQ(w.at("type"), Value("tq"));  // merged onto [quant.weight]
  EXPECT_EQ(w.at("bits"), Value(4));
  EXPECT_EQ(w.at("clip"), Value(1.0));   // and every default explicit
  EXPECT_EQ(quant.at("real_skip"), Value(false));
}

TEST(ConfigValidate, QuantOverrideProblems) {
  test::ScratchDir dir;
  auto c = check(dir, kMinimal +
                          "[quant]\n"                              // 6
                          "weight = \"off\"\n"                     // 7
                          "[[quant.override]]\n"                   // 8
                          "match = { role = [\"stemm\"] }\n"       // 9
                          "activation = { bits = 4 }\n"            // 10
                          "wieght = \"none\"\n");                  // 11
  const std::string f = c.file;
  EXPECT_EQ(c.problems, (std::vector<std::string>{
      f + ":7:1: quant.weight: expected \"none\" or a quantizer table, got \"off\" (hint: write weight = \"none\" or a "
          "table with type = \"<quantizer>\")",
      f + ":9:19: quant.override[0].match.role[0]: \"stemm\" is not one of \"stem\", \"body\", \"shortcut\", \"head\" "
          "(hint: did you mean 'stem'?)",
      f + ":10:1: quant.override[0].activation: has no 'type' and there is no default quantizer to merge it onto "
          "(hint: add type = \"<quantizer>\", or define the default in [quant.activation])",
      f + ":11:1: quant.override[0].wieght: unknown key (hint: did you mean 'weight'?)"}));
}

TEST(ConfigValidate, UnknownTypeHintsAtPluginsLoad) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", "[plugins]\nload = [\"other\"]\n" + kMinimal + "[scheduler]\ntype = \"testkit\"\n");
  Config c = Config::load(f);
  Registry registry;  // testkit is on the path but not loaded, as under `qhost run`
  PluginLoader loader(registry, {kGood});
  auto problems = c.check(registry, &loader);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[2].str(), f + ":9:1: scheduler.type: unknown scheduler 'testkit' (hint: plugin 'testkit' is "
                                   "installed but not loaded: add \"testkit\" to [plugins] load)");
}

TEST(ConfigValidate, ComponentFromAPluginThatLoadDoesNotList) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", "[plugins]\nload = [\"testkit\"]\n" + kMinimal + "[quant.weight]\ntype = \"dup\"\n");
  Config c = Config::load(f);
  Registry registry;
  PluginLoader loader(registry, {kGood, std::string(QTOOL_TEST_PLUGIN_ROOT) + "/duplicate_component"});
  loader.load("dup_a");  // what `qhost check` does: everything on the path is loaded
  loader.load("testkit");
  auto problems = c.check(registry, &loader);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].str(), f + ":9:1: quant.weight.type: quantizer 'dup' is provided by plugin 'dup_a', which "
                                   "[plugins] load does not list (hint: add \"dup_a\" to [plugins] load)");
}

TEST(ConfigValidate, ResolvedConfigMakesEveryDefaultExplicitAndRoundTrips) {
  test::ScratchDir dir;
  auto c = check(dir, "[plugins]\npath = [\"plugins\"]\n" + kMinimal + "[optimizer]\nlr = 1\n", {}, "lsq_r18.toml");
  ASSERT_TRUE(c.problems.empty()) << c.problems[0];
  const Table& r = c.config.root();
  EXPECT_EQ(r.at("experiment").as_table().at("name"), Value("lsq_r18"));  // file stem
  EXPECT_EQ(r.at("optimizer").as_table().at("lr"), Value(1.0));           // int converted
  EXPECT_EQ(r.at("optimizer").as_table().at("momentum"), Value(0.9));
  EXPECT_EQ(r.at("data").as_table().at("batch_size"), Value(128));
  EXPECT_EQ(r.at("data").as_table().at("size"), Value(16));  // dataset option default
  EXPECT_EQ(r.at("model").as_table().at("width"), Value(8));
  EXPECT_EQ(r.at("distributed").as_table().at("backend"), Value("auto"));
  EXPECT_EQ(r.at("trick"), Value(qsdk::List{}));
  EXPECT_EQ(r.at("plugins").as_table().at("path"), Value(qsdk::List{dir.path() + "/plugins"}));
  EXPECT_EQ(r.count("scheduler"), 0u);  // optional component sections stay absent

  std::string text = c.config.to_toml();
  EXPECT_EQ(text.rfind("# Resolved by qhost " QTOOL_VERSION " from " + c.file, 0), 0u) << text;
  auto optimizer = text.find("\n[optimizer]\n");
  ASSERT_NE(optimizer, std::string::npos) << text;
  EXPECT_NE(text.find("\nlr = 1.0\n", optimizer), std::string::npos) << text;
  EXPECT_NE(text.find("\nmomentum = 0.9\n", optimizer), std::string::npos) << text;
  EXPECT_NE(text.find("\ntrick = []\n"), std::string::npos) << text;
  // resolved.toml validates to exactly the same tree.
  Config again = Config::from_string(text, "resolved.toml");
  Registry registry;
  PluginLoader loader(registry, {kGood});
  loader.load("testkit");
  auto problems = again.check(registry, &loader);
  ASSERT_TRUE(problems.empty()) << problems[0].str();
  EXPECT_EQ(again.root(), r);
}

TEST(ConfigValidate, ValidateLoadsListedPluginsAndReportsLoadFailures) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", "[plugins]\nload = [\"testkit\", \"nosuch\"]\n" + kMinimal);
  Config c = Config::load(f);
  Registry registry;
  PluginLoader loader(registry, {kGood});
  try {
    c.validate(registry, loader);
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::plugin);
    EXPECT_EQ(std::string(e.what()), f + ":2:20: plugin 'nosuch' (libqplug_nosuch.so) not found in [" + kGood +
                                         "] (hint: available plugins: testkit)");
  }
  // [plugins] path is relative to the TOML file that names it.
  std::filesystem::create_directories(dir.path() + "/plugins");
  std::filesystem::copy_file(kGood + "/libqplug_testkit.so", dir.path() + "/plugins/libqplug_testkit.so");
  std::string g = dir.write("sub/exp2.toml", "[plugins]\npath = [\"../plugins\"]\nload = [\"testkit\"]\n" + kMinimal);
  Config c2 = Config::load(g);
  Registry r2;
  PluginLoader l2(r2, {});
  c2.validate(r2, l2);
  ASSERT_EQ(l2.loaded().size(), 1u);
  EXPECT_EQ(l2.loaded()[0].path, dir.path() + "/plugins/libqplug_testkit.so");
  EXPECT_NE(c2.to_toml().find("# plugin testkit 1.2.3 (" + dir.path() + "/plugins/libqplug_testkit.so)\n"),
            std::string::npos);
}

}  // namespace
}  // namespace qhost
