// Hostile and odd configs (issue 11): deep dotted keys, exponential extends
// graphs, numbers that used to escape as std::out_of_range, NaN in range
// checks, control characters in resolved.toml, and relative paths resolved
// against the file that names them whatever the current folder is.
#include "config/config.hpp"
#include "expect_error.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "test_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

using qtool_test::expect_error;

namespace qhost {
namespace {
using qsdk::Table;
using qsdk::Value;

const std::string kGood = std::string(QTOOL_TEST_PLUGIN_ROOT) + "/good";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::string> check(Config& c) {
  Registry registry;
  PluginLoader loader(registry, {kGood});
  loader.load("testkit");
  std::vector<std::string> out;
  for (const auto& p : c.check(registry, &loader)) out.push_back(p.str());
  return out;
}

const std::string kMinimal =
    "[data]\n"
    "type = \"tnoise\"\n"
    "root = \"/data\"\n"
    "[model]\n"
    "type = \"tlinear\"\n";

std::string dotted(size_t segments) {
  std::string key = "a";
  for (size_t i = 1; i < segments; ++i) key += ".a";
  return key;
}

// Was 13 s and 1 GB for 20,000 segments (a full path per level in the
// locations map); 100,000 overflowed toml++'s stack.
TEST(ConfigHardening, DeepDottedKeyIsALocatedErrorAndFast) {
  test::ScratchDir dir;
  for (size_t n : {20000u, 200000u}) {
    std::string f = dir.write("deep.toml", "[data]\nroot = \"x\"\n" + dotted(n) + " = 1\n");
    auto t0 = std::chrono::steady_clock::now();
    std::string e = expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config);
    EXPECT_LT(seconds_since(t0), 2.0);
    EXPECT_TRUE(has(e, f + ":3:1: key with more than 64 dotted segments")) << e.substr(0, 300);
  }
  // The same in a table header and in an inline table.
  std::string f = dir.write("header.toml", "\n[" + dotted(100) + "]\nx = 1\n");
  EXPECT_TRUE(has(expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config), f + ":2:2: key with more"));
  f = dir.write("inline.toml", "x = { " + dotted(100) + " = 1 }\n");
  EXPECT_TRUE(has(expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config), f + ":1:7: key with more"));
  // 64 segments are fine, and dots inside strings and comments are not segments.
  f = dir.write("ok.toml", dotted(64) + " = \"" + dotted(500) + "\" # " + dotted(500) + "\ns = '''\n" +
                               dotted(500) + "\n'''\n");
  Config c = Config::load(f);
  EXPECT_EQ(c.root().at("s").as_string(), dotted(500) + "\n");
}

TEST(ConfigHardening, OverlongKeyIsALocatedError) {
  test::ScratchDir dir;
  std::string f = dir.write("long.toml", "[data]\n" + std::string(2000, 'k') + " = 1\n");
  std::string e = expect_error([&] { Config::load(f); }, qsdk::ErrorCategory::config);
  EXPECT_TRUE(has(e, f + ":2:1: key 'data.kkk")) << e;
  EXPECT_TRUE(has(e, "is 2005 characters long (limit 1024)")) << e;
}

TEST(ConfigHardening, DeepOrLongSetKeyIsAUsageError) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", kMinimal);
  EXPECT_TRUE(has(expect_error([&] { Config::load(f, {dotted(20000) + "=1"}); }, qsdk::ErrorCategory::usage),
                  "key of 39999 characters (limit 1024)"));
  EXPECT_TRUE(has(expect_error([&] { Config::load(f, {dotted(100) + "=1"}); }, qsdk::ErrorCategory::usage),
                  "key with 100 dotted segments (limit 64)"));
  // A deep value is not parsed as TOML (toml++ would recurse per segment): it stays a string.
  Config c = Config::load(f, {"data.tag={" + dotted(100000) + "=1}"});
  EXPECT_EQ(c.root().at("data").as_table().at("tag").type(), Value::Type::string);
}

// Each file extends the next one twice: 2^22 parses before, 22 now.
TEST(ConfigHardening, ExtendsLoadsEachFileOnce) {
  test::ScratchDir dir;
  const int n = 22;
  for (int i = 0; i < n; ++i) {
    std::string next = "f" + std::to_string(i + 1) + ".toml";
    dir.write("f" + std::to_string(i) + ".toml", "extends = [\"" + next + "\", \"" + next + "\"]\n[train]\nepochs = " +
                                                     std::to_string(i + 1) + "\n");
  }
  dir.write("f" + std::to_string(n) + ".toml", "[data]\nroot = \"deepest\"\n[train]\nepochs = 99\n");
  auto t0 = std::chrono::steady_clock::now();
  Config c = Config::load(dir.path() + "/f0.toml");
  EXPECT_LT(seconds_since(t0), 2.0);
  EXPECT_EQ(c.root().at("train").as_table().at("epochs"), Value(1));
  EXPECT_EQ(c.root().at("data").as_table().at("root"), Value("deepest"));
  EXPECT_EQ(c.location("data.root").file, dir.path() + "/f" + std::to_string(n) + ".toml");
}

TEST(ConfigHardening, ExtendsDiamondIsNoCycleButACycleStillIs) {
  test::ScratchDir dir;
  dir.write("d.toml", "[train]\nepochs = 4\n");
  dir.write("b.toml", "extends = \"d.toml\"\n");
  dir.write("c.toml", "extends = \"d.toml\"\n");
  Config c = Config::load(dir.write("a.toml", "extends = [\"b.toml\", \"c.toml\"]\n"));
  EXPECT_EQ(c.root().at("train").as_table().at("epochs"), Value(4));
  dir.write("x.toml", "extends = [\"d.toml\", \"y.toml\"]\n");
  dir.write("y.toml", "extends = [\"d.toml\", \"x.toml\"]\n");
  std::string e = expect_error([&] { Config::load(dir.path() + "/x.toml"); }, qsdk::ErrorCategory::config);
  EXPECT_TRUE(has(e, "circular extends")) << e;
}

TEST(ConfigHardening, HugeArrayIndexInSetIsAUsageError) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", kMinimal + "[[trick]]\ntype = \"tscale\"\n");
  for (const std::string index : {"99999999999999999999999999", "18446744073709551616", "1"}) {
    std::string e =
        expect_error([&] { Config::load(f, {"trick." + index + ".weight=2"}); }, qsdk::ErrorCategory::usage);
    EXPECT_TRUE(has(e, "trick is an array of 1 elements; '" + index + "' is not a valid index")) << e;
  }
  Config c = Config::load(f, {"trick.0.weight=2"});
  EXPECT_EQ(c.root().at("trick").as_list()[0].as_table().at("weight"), Value(2));
}

TEST(ConfigHardening, SubnormalFloatsRoundTrip) {
  // stod threw std::out_of_range for these: error[runtime] from resolved.toml.
  for (double v : {1e-310, -4.9406564584124654e-324, 2.2250738585072009e-308, 0.1, 1e300}) {
    Value x(v);
    std::string text = x.to_string();
    Config c = Config::from_string("v = " + text + "\n", "t");
    EXPECT_EQ(c.root().at("v").as_double(), v) << text;
  }
  test::ScratchDir dir;
  Config c = Config::load(dir.write("exp.toml", kMinimal + "[optimizer]\nlr = 1e-310\n"));
  EXPECT_TRUE(check(c).empty());
  EXPECT_EQ(c.root().at("optimizer").as_table().at("lr").as_double(), 1e-310);
  EXPECT_TRUE(has(c.to_toml(), "lr = 1e-310"));
}

TEST(ConfigHardening, NonFiniteNumbersAreRejectedByRangeChecks) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", kMinimal +
                                            "[distributed]\n"
                                            "bucket_mb = nan\n"  // line 7: at_least(0.01)
                                            "[optimizer]\n"
                                            "momentum = -nan\n"  // line 9: range(0, 1)
                                            "lr = inf\n"         // line 10: at_least(0)
                                            "[quant.weight]\n"
                                            "type = \"tq\"\n"
                                            "scales = [1.0, nan]\n");  // line 13: list elements
  Config c = Config::load(f);
  auto problems = check(c);
  ASSERT_EQ(problems.size(), 4u) << ::testing::PrintToString(problems);
  EXPECT_TRUE(has(problems[0], f + ":7:1: distributed.bucket_mb: nan is not a finite number")) << problems[0];
  EXPECT_TRUE(has(problems[1], f + ":9:1: optimizer.momentum: nan is not a finite number")) << problems[1];
  EXPECT_TRUE(has(problems[2], f + ":10:1: optimizer.lr: inf is not a finite number")) << problems[2];
  EXPECT_TRUE(has(problems[3], f + ":13:16: quant.weight.scales[1]: nan is not a finite number")) << problems[3];
  // From the command line too.
  Config s = Config::load(dir.write("ok.toml", kMinimal), {"distributed.bucket_mb=nan"});
  problems = check(s);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(has(problems[0], "--set distributed.bucket_mb=nan: distributed.bucket_mb: nan is not a finite number"))
      << problems[0];
}

TEST(ConfigHardening, ControlCharactersRoundTripThroughResolvedToml) {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all += static_cast<char>(c);
  all += "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // é € 😀
  Table t{{"s", Value(all)}, {"t", Value(Table{{"key\r\twith\x01", Value("\r\n")}})}};
  std::string text = to_toml_text(t);
  Config back = Config::from_string(text, "resolved.toml");
  EXPECT_EQ(back.root(), t) << text;
  // Bytes that are not UTF-8 cannot be TOML: they become U+FFFD, and the text stays readable.
  Table bad{{"s", Value(std::string("a\xff" "b\xc3"))}};
  Config again = Config::from_string(to_toml_text(bad), "resolved.toml");
  EXPECT_EQ(again.root().at("s").as_string(), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
  // The header comment names the origin: a newline or a stray byte there must not break the file either.
  Config odd = Config::from_string("x = 1\n", "runs/a\nx = \"injected\"\xff.toml");
  Config reread = Config::from_string(odd.to_toml(), "resolved.toml");
  EXPECT_EQ(reread.root(), (Table{{"x", Value(1)}}));
}

TEST(ConfigHardening, SetValueMustBeUtf8) {
  test::ScratchDir dir;
  std::string f = dir.write("exp.toml", kMinimal);
  EXPECT_TRUE(
      has(expect_error([&] { Config::load(f, {"data.tag=\xff"}); }, qsdk::ErrorCategory::usage), "is not valid UTF-8"));
  Config c = Config::load(f, {"data.tag=a\rb"});
  EXPECT_EQ(Config::from_string(c.to_toml(), "r").root().at("data").as_table().at("tag"), Value("a\rb"));
}

// Runs `fn` with `dir` as the current folder.
template <class Fn>
void in_folder(const std::string& dir, Fn&& fn) {
  const auto old = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  try {
    fn();
  } catch (...) {
    std::filesystem::current_path(old);
    throw;
  }
  std::filesystem::current_path(old);
}

TEST(ConfigHardening, RelativePathsResolveAgainstTheFileThatNamesThem) {
  test::ScratchDir dir;
  dir.write("base/common.toml",
            "[plugins]\n"
            "path = [\"plug\"]\n"
            "[data]\n"
            "type = \"tnoise\"\n"
            "root = \"data/noise\"\n"
            "[train]\n"
            "init_from = \"../ckpt/fp.h5\"\n");
  std::string exp = dir.write("exp/child.toml",
                              "extends = \"../base/common.toml\"\n"
                              "[model]\n"
                              "type = \"tlinear\"\n");
  // Decoys: the same relative names under the current folder must not win.
  dir.write("elsewhere/data/noise/x", "");
  dir.write("elsewhere/ckpt/fp.h5", "");
  for (const std::string& cwd : {dir.path(), dir.path() + "/elsewhere", std::string("/")}) {
    in_folder(cwd, [&] {
      Config c = Config::load(exp);
      ASSERT_TRUE(check(c).empty()) << cwd;
      const Table& r = c.root();
      EXPECT_EQ(r.at("data").as_table().at("root"), Value(dir.path() + "/base/data/noise")) << cwd;
      EXPECT_EQ(r.at("train").as_table().at("init_from"), Value(dir.path() + "/ckpt/fp.h5")) << cwd;
      EXPECT_EQ(r.at("plugins").as_table().at("path"), Value(qsdk::List{Value(dir.path() + "/base/plug")})) << cwd;
      // What a checkpoint stores reads back the same anywhere.
      Config stored = Config::from_string(c.to_toml(), "ckpt.h5");
      EXPECT_TRUE(check(stored).empty());
      EXPECT_EQ(stored.root().at("data").as_table().at("root"), Value(dir.path() + "/base/data/noise"));
    });
  }
  // --set paths are relative to the current folder (the command line's own).
  in_folder(dir.path() + "/elsewhere", [&] {
    Config c = Config::load(exp, {"data.root=data/noise", "train.init_from="});
    ASSERT_TRUE(check(c).empty());
    EXPECT_EQ(c.root().at("data").as_table().at("root"), Value(dir.path() + "/elsewhere/data/noise"));
    EXPECT_EQ(c.root().at("train").as_table().at("init_from"), Value(""));
  });
}

}  // namespace
}  // namespace qhost

namespace qhost {
namespace {

// toml++ 3.3 (Debian bookworm) reaches __builtin_unreachable() when it tests a
// non-ASCII character outside a string for whitespace (found by tests/fuzz);
// such text is not TOML anyway, so it is refused before toml++ sees it.
TEST(ConfigHardening, NonAsciiOutsideStringsIsALocatedErrorNotUndefinedBehaviour) {
  EXPECT_NE(
      expect_error([] { Config::from_string("a = 1\n\xc3\xa9t\xc3\xa9 = 1\n", "t.toml"); }, qsdk::ErrorCategory::config)
          .find("t.toml:2:1: non-ASCII character outside a string or comment"),
      std::string::npos);
  EXPECT_NE(expect_error([] { Config::from_string("a = 1 \xef\xbb\xbe\n", "t.toml"); }, qsdk::ErrorCategory::config)
                .find("t.toml:1:7: non-ASCII character"),
            std::string::npos);
  // A quote where no string may start does not open one: what follows is checked.
  EXPECT_NE(expect_error([] { Config::from_string("'tZ' =-'\xef\xbb\xbeZ' ", "t.toml"); }, qsdk::ErrorCategory::config)
                .find("non-ASCII character"),
            std::string::npos);
  EXPECT_NE(expect_error([] { Config::from_string("s = \"\"\"x \\\xef\xbb\xa0\"\"\"\n", "t.toml"); },
                         qsdk::ErrorCategory::config)
                .find("invalid escape sequence"),
            std::string::npos);
  // Where TOML allows them: strings (keys too, quoted), comments, a byte order mark.
  Config ok = Config::from_string(
      "\xef\xbb\xbf# caf\xc3\xa9 \xef\xbb\xbe\n\"\xc3\xa9t\xc3\xa9\" = \"\xef\xbb\xbe\"\nm = '''\xc3\xa9\n'''\n"
      "l = ['\xc3\xa9', \"\\u00e9\"]\n",
      "t.toml");
  EXPECT_EQ(ok.root().at("\xc3\xa9t\xc3\xa9").as_string(), "\xef\xbb\xbe");
  EXPECT_EQ(ok.root().at("l").as_list().at(1).as_string(), "\xc3\xa9");
  // --set: a value that is not TOML is a bare-word string, as before.
  test::ScratchDir dir;
  Config s = Config::load(dir.write("exp.toml", "[experiment]\nname = \"x\"\n"), {"experiment.name=\xc3\xa9t\xc3\xa9"});
  EXPECT_EQ(s.root().at("experiment").as_table().at("name").as_string(), "\xc3\xa9t\xc3\xa9");
}

}  // namespace
}  // namespace qhost
