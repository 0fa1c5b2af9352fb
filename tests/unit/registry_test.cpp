// Registry: providers, duplicates, unknown names, and errors from factories
// re-thrown with the component and its plugin in front.
#include "expect_error.hpp"
#include "plugins/registry.hpp"

#include <torch/torch.h>

#include <gtest/gtest.h>

namespace qhost {
namespace {

struct PickyOptions {
  int64_t bits = 2;
  static qsdk::Schema<PickyOptions> schema() {
    return qsdk::Schema<PickyOptions>("throws on bits == 3").field("bits", &PickyOptions::bits, "bits").range(1, 8);
  }
};
class Picky : public qsdk::QuantizerImpl {
 public:
  Picky(PickyOptions o, const qsdk::QuantizerContext&) : bits_(o.bits) {
    if (bits_ == 3) qsdk::config_error("bits", "3 bits is not supported by this method", "use 2 or 4");
    if (bits_ == 5) throw std::runtime_error("internal failure");
    if (bits_ == 6) TORCH_CHECK(false, "torch says no");
  }
  torch::Tensor forward(const torch::Tensor& x) override { return x; }
  int64_t num_levels() const override { return int64_t{1} << bits_; }

 private:
  int64_t bits_;
};

Registry& picky_registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->begin_plugin({"pickyplug", "0.9.0", "/p/libqplug_pickyplug.so"});
    reg->add_quantizer<Picky, PickyOptions>("picky");
    reg->commit_plugin();
    return reg;
  }();
  return *r;
}

std::string make_error(int64_t bits, qsdk::ErrorCategory expected) {
  return qtool_test::expect_error(
      [&] {
        picky_registry().make_quantizer({{"type", "picky"}, {"bits", bits}}, {});
      },
      expected);
}

TEST(Registry, BuildsWithDefaultsAndIgnoresHostKeys) {
  auto q = picky_registry().make_quantizer({{"type", "picky"}, {"batch_size", 128}}, {});
  EXPECT_EQ(q->num_levels(), 4);  // bits defaulted to 2
}

TEST(Registry, PluginErrorsNameComponentAndProvider) {
  const std::string ctx = "quantizer/picky (plugin 'pickyplug' 0.9.0, /p/libqplug_pickyplug.so)";
  EXPECT_EQ(make_error(3, qsdk::ErrorCategory::config),
            ctx + ": bits: 3 bits is not supported by this method (hint: use 2 or 4)");
  EXPECT_EQ(make_error(5, qsdk::ErrorCategory::plugin), ctx + ": internal failure");
  std::string torch_error = make_error(6, qsdk::ErrorCategory::plugin);
  EXPECT_EQ(torch_error.rfind(ctx + ": LibTorch error: torch says no", 0), 0u) << torch_error;
}

TEST(Registry, UnknownTypeSuggestsAndListsKnown) {
  try {
    picky_registry().make_quantizer({{"type", "picki"}}, {});
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::config);
    EXPECT_STREQ(e.what(), "unknown quantizer 'picki' (hint: did you mean 'picky'? known quantizers: picky)");
  }
  EXPECT_EQ(picky_registry().unknown_hint(qsdk::Kind::model, "resnet"),
            "no models are registered: is the plugin search path right? (see `qhost list`)");
}

TEST(Registry, DuplicatesNameBothProvidersAndStagingRollsBack) {
  Registry r;
  r.begin_plugin({"first", "1.0.0", "/a/libqplug_first.so"});
  r.add_quantizer<Picky, PickyOptions>("same");
  r.commit_plugin();
  r.begin_plugin({"second", "2.0.0", "/b/libqplug_second.so"});
  r.add_quantizer<Picky, PickyOptions>("other");
  try {
    r.add_quantizer<Picky, PickyOptions>("same");
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::plugin);
    EXPECT_STREQ(e.what(),
                 "quantizer/same: is registered by both plugin 'first' 1.0.0 (/a/libqplug_first.so) and plugin "
                 "'second' 2.0.0 (/b/libqplug_second.so) (hint: remove one of the two plugins from the plugin search "
                 "path, or rename the component)");
  }
  r.abort_plugin();
  EXPECT_EQ(r.find(qsdk::Kind::quantizer, "other"), nullptr);
  EXPECT_EQ(r.names(qsdk::Kind::quantizer), std::vector<std::string>{"same"});
}

TEST(Registry, RejectsNamesThatAreNotLowerSnake) {
  Registry r;
  try {
    r.add_quantizer<Picky, PickyOptions>("MyQuant");
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_STREQ(e.what(), "quantizer/MyQuant: component name 'MyQuant' is not lower_snake_case (hint: names are what "
                           "users write as type = \"...\"; use e.g. 'my_quantizer')");
  }
}

TEST(Registry, ListsByKindThenName) {
  Registry r;
  r.add_quantizer<Picky, PickyOptions>("zeta");
  r.add_quantizer<Picky, PickyOptions>("alpha");
  auto all = r.components();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->key(), "quantizer/alpha");
  EXPECT_EQ(all[1]->provider.describe(), "qhost itself");
  EXPECT_TRUE(r.components(qsdk::Kind::model).empty());
}

}  // namespace
}  // namespace qhost
