// Config loading: extends (merge rules, locations, cycles), --set, syntax errors.
#include "config/config.hpp"
#include "expect_error.hpp"
#include "test_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

using qtool_test::expect_error;

namespace qhost {
namespace {
using qsdk::Table;
using qsdk::Value;

const Value& at(const Table& t, const std::string& dotted) {
  const Table* cur = &t;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    const Value& v = cur->at(dotted.substr(start, dot - start));
    if (dot == std::string::npos) return v;
    cur = &v.as_table();
    start = dot + 1;
  }
}

TEST(ConfigLoad, ExtendsDeepMergesTablesAndReplacesArrays) {
  test::ScratchDir dir;
  dir.write("base/common.toml",
            "[data]\n"
            "type = \"tnoise\"\n"
            "root = \"/data\"\n"
            "batch_size = 64\n"
            "[plugins]\n"
            "load = [\"a\", \"b\"]\n");
  dir.write("base/quant.toml",
            "[quant.weight]\n"
            "type = \"tq\"\n"
            "bits = 4\n");
  std::string child = dir.write("exp/child.toml",
                                "extends = [\"../base/common.toml\", \"../base/quant.toml\"]\n"
                                "[data]\n"
                                "batch_size = 32\n"
                                "[plugins]\n"
                                "load = [\"c\"]\n"
                                "[quant.weight]\n"
                                "bits = 2\n");
  Config c = Config::load(child);
  EXPECT_EQ(at(c.root(), "data.type").as_string(), "tnoise");      // from the base
  EXPECT_EQ(at(c.root(), "data.batch_size").as_int(), 32);         // child wins
  EXPECT_EQ(at(c.root(), "plugins.load"), Value(qsdk::List{"c"}));  // arrays replaced, not appended
  EXPECT_EQ(at(c.root(), "quant.weight.type").as_string(), "tq");
  EXPECT_EQ(at(c.root(), "quant.weight.bits").as_int(), 2);
  EXPECT_EQ(c.root().count("extends"), 0u);
  // Each key remembers the file and line it came from.
  EXPECT_EQ(c.location("data.type").str(), dir.path() + "/base/common.toml:2:1");
  EXPECT_EQ(c.location("data.batch_size").str(), child + ":3:1");
  EXPECT_EQ(c.location("plugins.load[0]").str(), child + ":5:9");
  EXPECT_EQ(c.location("quant.weight.type").str(), dir.path() + "/base/quant.toml:2:1");
  // Unknown keys fall back to the closest known table, then the file.
  EXPECT_EQ(c.location("data.nothing.deeper").str(), c.location("data").str());
  EXPECT_EQ(c.location("nothing").str(), child);
}

TEST(ConfigLoad, SetOverridesParseTomlValuesAndBareWords) {
  test::ScratchDir dir;
  std::string f = dir.write("e.toml",
                            "[train]\n"
                            "epochs = 90\n"
                            "[[trick]]\n"
                            "type = \"tscale\"\n"
                            "[[trick]]\n"
                            "type = \"tscale\"\n"
                            "weight = 0.5\n");
  Config c = Config::load(f, {"train.epochs=2", "train.init_from=runs/fp/best.h5", "quant.weight.type=tq",
                              "quant.weight.scales=[0.5, 1]", "trick.1.weight=2.5", "experiment.name=\"quoted\"",
                              "data.drop_last=false", "experiment.out_dir="});
  EXPECT_EQ(at(c.root(), "train.epochs"), Value(2));
  EXPECT_EQ(at(c.root(), "train.init_from"), Value("runs/fp/best.h5"));  // not TOML: a bare string
  EXPECT_EQ(at(c.root(), "quant.weight.type"), Value("tq"));              // tables created on the way
  EXPECT_EQ(at(c.root(), "quant.weight.scales"), Value(qsdk::List{0.5, 1}));
  EXPECT_EQ(c.root().at("trick").as_list()[1].as_table().at("weight"), Value(2.5));
  EXPECT_EQ(at(c.root(), "experiment.name"), Value("quoted"));
  EXPECT_EQ(at(c.root(), "data.drop_last"), Value(false));
  EXPECT_EQ(at(c.root(), "experiment.out_dir"), Value(""));
  EXPECT_EQ(c.location("train.epochs").str(), "--set train.epochs=2");
  EXPECT_EQ(c.location("trick[1].weight").str(), "--set trick.1.weight=2.5");
  EXPECT_EQ(c.location("trick[1].type").str(), f + ":6:1");
}

TEST(ConfigLoad, MalformedSetIsAUsageError) {
  test::ScratchDir dir;
  std::string f = dir.write("e.toml", "[train]\nepochs = 1\n[[trick]]\ntype = \"tscale\"\n");
  EXPECT_EQ(expect_error([&] { Config::load(f, {"train.epochs"}); }, qsdk::ErrorCategory::usage),
            "--set train.epochs: expected key=value (hint: e.g. --set train.epochs=2 or --set quant.weight.type=lsq)");
  EXPECT_EQ(expect_error([&] { Config::load(f, {"trick.3.weight=1"}); }, qsdk::ErrorCategory::usage),
            "--set trick.3.weight=1: trick is an array of 1 elements; '3' is not a valid index (hint: use "
            "trick.<index>.<key>, index from 0)");
  EXPECT_EQ(expect_error([&] { Config::load(f, {"train.epochs.x=1"}); }, qsdk::ErrorCategory::usage),
            "--set train.epochs.x=1: train.epochs is not a table, cannot set 'x' in it");
}

TEST(ConfigLoad, SyntaxErrorsAreLocated) {
  test::ScratchDir dir;
  std::string f = dir.write("bad.toml", "[train]\nepochs = 1\nlr = = 2\n");
  std::string msg = expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config);
  EXPECT_EQ(msg.rfind(f + ":3:6: TOML syntax error: ", 0), 0u) << msg;
}

TEST(ConfigLoad, MissingAndCircularExtendsAreLocated) {
  test::ScratchDir dir;
  std::string f = dir.write("a.toml", "# a\nextends = \"nope.toml\"\n");
  EXPECT_EQ(expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config),
            f + ":2:1: cannot read '" + dir.path() +
                "/nope.toml': no such file (hint: extends paths are relative to "
                "the file that names them)");
  std::string x = dir.write("x.toml", "extends = \"y.toml\"\n");
  std::string y = dir.write("y.toml", "extends = [\"x.toml\"]\n");
  std::string msg = expect_error([&] { Config::load(x); }, qsdk::ErrorCategory::config);
  EXPECT_EQ(msg.rfind(y + ":1:1: circular extends: " + x + " extends itself (hint: chain: ", 0), 0u) << msg;
  EXPECT_EQ(
      expect_error([&] { Config::load(dir.path() + "/missing.toml"); }, qsdk::ErrorCategory::config),
      dir.path() + "/missing.toml: cannot read '" + dir.path() + "/missing.toml': no such file (hint: check the path)");
  std::string w = dir.write("w.toml", "extends = 3\n");
  EXPECT_EQ(expect_error([&] { Config::load(w); }, qsdk::ErrorCategory::config),
            w + ":1:1: extends: expected a string or a list of strings (hint: write extends = \"base.toml\" or "
                "extends = [\"a.toml\", \"b.toml\"])");
}

TEST(ConfigLoad, DatesAreRejectedWithALocation) {
  test::ScratchDir dir;
  std::string f = dir.write("d.toml", "[experiment]\nname = 1979-05-27\n");
  EXPECT_EQ(expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config),
            f + ":2:8: experiment.name: dates and times are not supported (hint: write the value as a string)");
}

TEST(ConfigWriter, WritesTomlThatReadsBackToTheSameTree) {
  Table root{{"experiment", Table{{"name", "x"}, {"seed", 3}}},
             {"quant", Table{{"real_skip", true},
                             {"weight", Table{{"type", "tq"}, {"scales", qsdk::List{0.5, 1.0}}}},
                             {"override", qsdk::List{Table{{"match", Table{{"role", qsdk::List{"stem"}}}},
                                                           {"weight", "none"}}}}}},
             {"trick", qsdk::List{Table{{"type", "tscale"}, {"weight", 2.0}}}},
             {"odd key", Table{{"a b", "quote \"me\"\nplease"}}}};
  std::string text = to_toml_text(root, {"experiment", "quant", "trick"});
  EXPECT_EQ(text,
            "\n[experiment]\nname = \"x\"\nseed = 3\n"
            "\n[quant]\nreal_skip = true\n"
            "\n[[quant.override]]\nweight = \"none\"\n"
            "\n[quant.override.match]\nrole = [\"stem\"]\n"
            "\n[quant.weight]\nscales = [0.5, 1.0]\ntype = \"tq\"\n"
            "\n[[trick]]\ntype = \"tscale\"\nweight = 2.0\n"
            "\n[\"odd key\"]\n\"a b\" = \"quote \\\"me\\\"\\nplease\"\n");
  Config back = Config::from_string(text, "resolved.toml");
  EXPECT_EQ(back.root(), root);
}

}  // namespace
}  // namespace qhost
