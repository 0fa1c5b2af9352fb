// Forward shapes of every model variant, plus init and error behaviour.
#include <torch/torch.h>

#include "test_support.hpp"

#include <gtest/gtest.h>
#include <qsdk/error.hpp>

namespace {

using qsdk::Table;
using Shape = std::vector<int64_t>;

struct Case {
  std::string name;     // gtest name
  std::string plugin;   // model type
  Table options;
  int64_t size = 32;    // input resolution
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

Table opt(std::initializer_list<std::pair<const std::string, qsdk::Value>> kv) { return Table(kv); }

std::vector<Case> cases() {
  std::vector<Case> c{
      {"torch18", "torch_resnet", opt({{"depth", 18}})},
      {"torch34", "torch_resnet", opt({{"depth", 34}})},
      {"torch50", "torch_resnet", opt({{"depth", 50}})},
      {"torch18_caffe_prelu", "torch_resnet", opt({{"depth", 18}, {"caffe_pooling", true}, {"activation", "prelu"}})},
      {"torch18_groupnorm", "torch_resnet", opt({{"depth", 18}, {"norm", "group_norm"}, {"norm_groups", 8}})},
      {"resnet18", "resnet", opt({{"depth", 18}})},
      {"resnet18_imagenet", "resnet", opt({{"depth", 18}, {"stem", "imagenet"}}), 64},
      {"resnet34", "resnet", opt({{"depth", 34}, {"width_alpha", 0.25}})},
      {"resnet50", "resnet", opt({{"depth", 50}, {"width_alpha", 0.25}})},
      {"resnet50_bacs_prebn", "resnet", opt({{"depth", 50}, {"width_alpha", 0.25}, {"order", "bacs"}, {"pre_bn", true}})},
      {"resnet101_build", "resnet", opt({{"depth", 101}, {"width_alpha", 0.125}}), 16},
      {"resnet20", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}})},
      {"resnet32", "resnet", opt({{"depth", 32}, {"width_alpha", 0.25}})},
      {"resnet44", "resnet", opt({{"depth", 44}, {"width_alpha", 0.25}})},
      {"resnet56", "resnet", opt({{"depth", 56}, {"width_alpha", 0.25}})},
      {"resnet18_prebn_patch", "resnet", opt({{"depth", 18}, {"pre_bn", true}, {"patch_pre_bn_stem", true}, {"order", "bacs"}})},
      {"resnet18_pool_first", "resnet", opt({{"depth", 18}, {"fix_pooling", false}, {"stem", "imagenet"}}), 64},
      {"resnet18_avgpool_shortcut", "resnet", opt({{"depth", 18}, {"singleconv", false}})},
      {"resnet18_tresnet", "resnet", opt({{"depth", 18}, {"stem", "tresnet"}}), 64},
      {"resnet18_tresnet_maxpool_k3", "resnet", opt({{"depth", 18}, {"stem", "tresnet_maxpool"}, {"stem_kernel", 3}}), 64},
      {"resnet18_width_half", "resnet", opt({{"depth", 18}, {"width_alpha", 0.5}})},
      {"resnet20_ldn_c", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"shrink_order", "c"}})},
      {"resnet20_ldn_ca", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"shrink_order", "ca"}})},
      {"resnet20_ldn_cba", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"shrink_order", "cba"}})},
      {"resnet20_ldn3x3", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"ldn3x3", true}})},
      {"resnet20_ldn_bacs", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"shrink_order", "cb"}, {"order", "bacs"}, {"pre_bn", true}})},
      {"resnet20_dchr", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"dchr", true}, {"singleconv", false}})},
      {"resnet20_identify_norm", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"identify_norm", true}})},
      {"resnet20_ldn_f0x0", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"f0x0", true}})},
      {"resnet20_ldn_f1x1_s1x1", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true}, {"f1x1", true}, {"s1x1", true}})},
      {"prone20_s1x1", "prone_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"s1x1", true}})},
      {"resnet20_zir_groupnet_stem", "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"zir", true}, {"group_net", true}})},
      {"bireal18", "bireal_resnet", opt({{"depth", 18}})},
      {"bireal20", "bireal_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"activation", "relu"}})},
      {"groupnet18", "groupnet_resnet", opt({{"depth", 18}, {"width_alpha", 0.25}})},
      {"groupnet18_base1", "groupnet_resnet", opt({{"depth", 18}, {"base", 1}})},
      {"prone18", "prone_resnet", opt({{"depth", 18}})},
      {"prone20_bn_before_restore", "prone_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"bn_before_restore", true}})},
      {"prone20_downsample", "prone_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"no_prone_downsample", false}})},
      {"prone20_f3x3_s3x3", "prone_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"f3x3", true}, {"s3x3", true}})},
      {"prone50", "prone_resnet", opt({{"depth", 50}, {"width_alpha", 0.25}})},
      {"prone18_imagenet_force_padding", "prone_resnet", opt({{"depth", 18}, {"width_alpha", 0.125}, {"stem", "imagenet"}, {"force_padding", true}}), 224},
      {"fixup18", "fixup_resnet", opt({{"depth", 18}})},
      {"fixup20_nobias", "fixup_resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"bias", false}})},
      {"fixup50", "fixup_resnet", opt({{"depth", 50}, {"width_alpha", 0.25}})},
  };
  for (const char* order : {"cbsa", "cbas", "cabs", "bacs", "bcas"})
    for (bool origin : {true, false})
      c.push_back({std::string("resnet20_") + order + (origin ? "_origin" : "_bireal"), "resnet",
                   opt({{"depth", 20}, {"width_alpha", 0.25}, {"order", order}, {"origin", origin}, {"fix", false}})});
  for (const char* norm : {"static_bn", "freeze_bn", "reverse_bn", "instance_norm"})
    c.push_back({std::string("resnet20_") + norm, "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"norm", norm}})});
  for (const char* act : {"prelu", "none", "relu6", "leaky_relu"})
    c.push_back({std::string("resnet20_act_") + act, "resnet", opt({{"depth", 20}, {"width_alpha", 0.25}, {"activation", act}})});
  return c;
}

class ModelForward : public ::testing::TestWithParam<Case> {};

TEST_P(ModelForward, ShapeFiniteAndTrainable) {
  const Case& c = GetParam();
  qtest::QuantizerLog log;
  // Quantized body so the factory's layers are exercised too.
  Table quant{{"weight", Table{{"type", "testq"}, {"bits", 2}}},
              {"activation", Table{{"type", "testq"}, {"bits", 2}}},
              {"padding_after_quant", c.plugin == "bireal_resnet"}};
  qhost::LayerFactory layers(quant, log.maker(), 2, c.size);
  auto model = qtest::make_model(c.plugin, c.options, layers, 7, {3, c.size, c.size});
  model->train();
  auto x = torch::randn({2, 3, c.size, c.size});
  auto y = model->forward(x);
  ASSERT_EQ(y.sizes().vec(), (Shape{2, 7}));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  y.square().mean().backward();
  int64_t with_grad = 0;
  for (const auto& p : model->parameters()) with_grad += p.grad().defined() ? 1 : 0;
  EXPECT_GT(with_grad, 0);
  model->eval();
  torch::NoGradGuard ng;
  EXPECT_EQ(model->forward(x).sizes().vec(), (Shape{2, 7}));
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelForward, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

std::shared_ptr<qsdk::ModelImpl> fp_model(const std::string& plugin, const Table& options, int64_t size = 32) {
  static qtest::QuantizerLog log;
  static std::vector<std::unique_ptr<qhost::LayerFactory>> keep;
  keep.push_back(std::make_unique<qhost::LayerFactory>(Table{}, log.maker(), 2, size));
  return qtest::make_model(plugin, options, *keep.back(), 10, {3, size, size});
}

TEST(ModelInit, FixupStartsWithZeroLogitsAndZeroLastConvs) {
  auto m = fp_model("fixup_resnet", Table{{"depth", 18}});
  auto p = m->named_parameters();
  EXPECT_EQ(p["layer1.0.conv2.0.weight"].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(p["fc.weight"].abs().sum().item<double>(), 0.0);
  // conv1 std = sqrt(2/(C_out*9)) * m^-1/2 with m = 4 stages (docs/models.md#fixup).
  const double expected = std::sqrt(2.0 / (64 * 9)) / 2.0;
  EXPECT_NEAR(p["layer1.0.conv1.0.weight"].std().item<double>(), expected, expected * 0.1);
  torch::NoGradGuard ng;
  EXPECT_EQ(m->forward(torch::randn({2, 3, 32, 32})).abs().max().item<double>(), 0.0);
}

TEST(ModelInit, KaimingFanOutAndZir) {
  auto m = fp_model("resnet", Table{{"depth", 18}, {"zir", true}});
  auto p = m->named_parameters();
  const double expected = std::sqrt(2.0 / (256 * 9));
  EXPECT_NEAR(p["layer3.1.conv1.0.weight"].std().item<double>(), expected, expected * 0.05);
  EXPECT_EQ(p["layer1.0.bn2.0.weight"].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(p["layer1.0.bn1.0.weight"].mean().item<double>(), 1.0);
  auto pre = fp_model("resnet", Table{{"depth", 18}, {"zir", true}, {"order", "bacs"}, {"pre_bn", true}});
  auto pp = pre->named_parameters();
  EXPECT_EQ(pp["layer1.0.fix_bn.weight"].abs().sum().item<double>(), 0.0);
}

void expect_config_error(const std::string& plugin, const Table& options, const std::string& place) {
  try {
    fp_model(plugin, options);
    ADD_FAILURE() << "no error for " << place;
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::config) << e.what();
    EXPECT_EQ(e.place(), place) << e.what();
    EXPECT_FALSE(e.hint().empty() && e.message().empty());
  }
}

TEST(ModelErrors, BadOptionCombinationsAreConfigErrors) {
  expect_config_error("resnet", Table{{"depth", 19}}, "depth");
  expect_config_error("torch_resnet", Table{{"depth", 20}}, "depth");
  expect_config_error("resnet", Table{{"depth", 50}, {"origin", false}}, "origin");
  expect_config_error("bireal_resnet", Table{{"depth", 50}}, "origin");
  expect_config_error("resnet", Table{{"lossless_downsample", true}, {"shrink_order", "ba"}}, "shrink_order");
  expect_config_error("resnet", Table{{"norm", "group_norm"}}, "norm_groups");
  expect_config_error("prone_resnet", Table{{"pre_bn", true}}, "pre_bn");
  expect_config_error("resnet", Table{{"dchr", true}}, "dchr");
  expect_config_error("resnet", Table{{"f0x0", true}}, "f0x0");
}

// `"a", "b"`, as the schema lists an enum option's allowed values.
std::string quoted(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

// The option-valued keys are enums: an unknown spelling is a config error about
// that key listing the allowed spellings (before any layer is built), and the
// schema carries the same list for `qhost describe`.
TEST(ModelErrors, UnknownEnumValuesListTheAllowedValues) {
  const std::vector<std::string> orders{"cbsa", "cbas", "cabs", "bacs", "bcas"};
  const std::vector<std::string> stems{"auto", "imagenet", "cifar", "tresnet", "tresnet_maxpool"};
  const std::vector<std::string> norms{"batchnorm",  "static_bn",     "freeze_bn",
                                       "reverse_bn", "instance_norm", "group_norm"};
  const std::vector<std::string> acts{"relu", "prelu", "none", "relu6", "leaky_relu"};
  struct Enum {
    std::string plugin, option, bad, default_value;
    std::vector<std::string> allowed;
  };
  std::vector<Enum> enums{
      {"torch_resnet", "norm", "batch_norm", "batchnorm", norms},
      {"torch_resnet", "activation", "ReLU", "relu", acts},
      {"groupnet_resnet", "order", "cbsa ", "cabs", {"cabs", "cbsa", "cbas", "bacs", "bcas"}},
  };
  for (const char* flexible : {"resnet", "bireal_resnet", "prone_resnet", "fixup_resnet"}) {
    enums.push_back({flexible, "order", "abcs", "cbsa", orders});
    enums.push_back({flexible, "stem", "tresnet-maxpool", "auto", stems});
    enums.push_back({flexible, "norm", "bn", "batchnorm", norms});
    // Bi-Real's default is the reference's NReLU.
    enums.push_back(
        {flexible, "activation", "nrelu", std::string(flexible) == "bireal_resnet" ? "none" : "relu", acts});
  }
  for (const auto& e : enums) {
    SCOPED_TRACE(e.plugin + "." + e.option);
    const auto* field = qtest::model_spec(e.plugin).schema.find(e.option);
    ASSERT_NE(field, nullptr);
    EXPECT_EQ(field->type, qsdk::FieldType::enumeration);
    EXPECT_EQ(field->allowed, e.allowed);
    EXPECT_EQ(field->default_value.as_string(), e.default_value);
    try {
      fp_model(e.plugin, Table{{e.option, e.bad}});
      ADD_FAILURE() << "no error";
    } catch (const qsdk::Error& err) {
      EXPECT_EQ(err.category(), qsdk::ErrorCategory::config) << err.what();
      EXPECT_EQ(err.place(), e.option) << err.what();
      EXPECT_EQ(err.message(), "\"" + e.bad + "\" is not one of " + quoted(e.allowed)) << err.what();
      EXPECT_EQ(err.hint(), "allowed values: " + quoted(e.allowed)) << err.what();
    }
  }
}

TEST(ModelSchemas, EveryPluginDocumentsEveryOption) {
  for (const char* name : {"torch_resnet", "resnet", "bireal_resnet", "groupnet_resnet", "prone_resnet", "fixup_resnet"}) {
    const auto& spec = qtest::model_spec(name);
    EXPECT_EQ(spec.kind, qsdk::Kind::model);
    EXPECT_FALSE(spec.summary.empty());
    ASSERT_NE(spec.schema.find("depth"), nullptr) << name;
    for (const auto& f : spec.schema.fields) EXPECT_FALSE(f.doc.empty()) << name << "." << f.name;
  }
  EXPECT_EQ(qtest::model_spec("groupnet_resnet").schema.find("base")->default_value.as_int(), 5);
  EXPECT_FALSE(qtest::model_spec("bireal_resnet").schema.find("origin"));
  EXPECT_EQ(qtest::model_spec("resnet").schema.find("order")->allowed.size(), 5u);
}

}  // namespace
