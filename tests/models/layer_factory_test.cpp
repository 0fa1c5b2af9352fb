// qhost::LayerFactory: role policy, overrides, padding order, records, contexts.
#include <torch/torch.h>

#include "quant/layer_factory.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <qsdk/error.hpp>

namespace {

using qsdk::LayerRole;
using qsdk::List;
using qsdk::Table;
using qsdk::Value;

Table lsq(int bits) { return Table{{"type", "testq"}, {"bits", bits}}; }

Table base_quant() { return Table{{"weight", lsq(2)}, {"activation", lsq(2)}}; }

torch::nn::Conv2dOptions conv3(int64_t in, int64_t out) {
  return torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false);
}

TEST(LayerFactory, EmptyQuantTableMakesPlainLayers) {
  qtest::QuantizerLog log;
  qhost::LayerFactory f(Table{}, log.maker(), 8, 32);
  auto conv = f.conv2d("layer1.0.conv1.0", LayerRole::body, conv3(4, 8));
  auto fc = f.linear("fc", LayerRole::head, torch::nn::LinearOptions(8, 10));
  EXPECT_TRUE(log.contexts.empty());
  std::vector<std::string> names;
  for (const auto& p : conv->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, std::vector<std::string>{"weight"});
  EXPECT_EQ(conv->weight().sizes().vec(), (std::vector<int64_t>{8, 4, 3, 3}));
  EXPECT_EQ(fc->named_parameters().size(), 2u);
  // A plain conv equals torch's conv with the same padding.
  auto x = torch::randn({2, 4, 5, 5});
  EXPECT_TRUE(torch::allclose(conv->forward(x), torch::nn::functional::conv2d(x, conv->weight(), torch::nn::functional::Conv2dFuncOptions().padding(1))));
  ASSERT_EQ(f.records().size(), 2u);
  EXPECT_FALSE(f.records()[0].weight.active());
  EXPECT_EQ(f.records()[1].kind, "linear");
}

TEST(LayerFactory, DefaultRolePolicy) {
  qtest::QuantizerLog log;
  qhost::LayerFactory f(base_quant(), log.maker(), 8, 32);
  auto stem = f.conv2d("conv1", LayerRole::stem, conv3(3, 8));
  auto body = f.conv2d("layer1.0.conv1.0", LayerRole::body, conv3(8, 8));
  auto sc = f.conv2d("layer2.0.skip.1", LayerRole::shortcut, torch::nn::Conv2dOptions(8, 16, 1).bias(false));
  auto head = f.linear("fc", LayerRole::head, torch::nn::LinearOptions(16, 10));
  const auto& r = f.records();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_FALSE(r[0].weight.active());
  EXPECT_FALSE(r[0].activation.active());
  EXPECT_EQ(r[1].weight.str(), "testq/2b");
  EXPECT_EQ(r[1].activation.levels, 4);
  EXPECT_FALSE(r[1].output.active());
  EXPECT_TRUE(r[2].weight.active());  // shortcut quantized unless real_skip
  EXPECT_FALSE(r[3].weight.active());
  EXPECT_EQ(r[1].str(), "1 layer1.0.conv1.0 body conv2d w=testq/2b a=testq/2b o=none");
  // Submodules only for active quantizers.
  std::vector<std::string> children;
  for (const auto& c : body->named_children()) children.push_back(c.key());
  EXPECT_EQ(children, (std::vector<std::string>{"quant_weight", "quant_activation"}));
  EXPECT_TRUE(stem->named_children().is_empty());
  auto names = qtest::shapes(*body);
  EXPECT_TRUE(names.count("quant_weight.clip_val"));
  EXPECT_TRUE(names.count("quant_activation.clip_val"));
}

TEST(LayerFactory, FlagsQuantizeStemHeadAndRealSkip) {
  qtest::QuantizerLog log;
  Table q = base_quant();
  q["quantize_stem"] = true;
  q["quantize_head"] = true;
  q["real_skip"] = true;
  qhost::LayerFactory f(q, log.maker(), 8, 32);
  f.conv2d("conv1", LayerRole::stem, conv3(3, 8));
  f.conv2d("layer2.0.skip.1", LayerRole::shortcut, torch::nn::Conv2dOptions(8, 16, 1).bias(false));
  f.linear("fc", LayerRole::head, torch::nn::LinearOptions(16, 10));
  EXPECT_TRUE(f.records()[0].weight.active());
  EXPECT_FALSE(f.records()[1].weight.active());
  EXPECT_FALSE(f.records()[1].activation.active());
  EXPECT_TRUE(f.records()[2].weight.active());
}

TEST(LayerFactory, QuantizerContextShapes) {
  qtest::QuantizerLog log;
  Table q = base_quant();
  q["output"] = lsq(8);
  q["quantize_head"] = true;
  qhost::LayerFactory f(q, log.maker(), 16, 224);
  f.conv2d("layer1.0.conv1.0", LayerRole::body, torch::nn::Conv2dOptions(4, 8, 3).padding(1).groups(2).bias(false));
  f.linear("fc", LayerRole::head, torch::nn::LinearOptions(8, 10));
  ASSERT_EQ(log.contexts.size(), 6u);
  const auto& w = log.contexts[0];
  EXPECT_EQ(w.target, qsdk::QuantTarget::weight);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{8, 4, 3, 3}));  // C_in, not C_in/groups
                                                           // (docs/methods.md#groups-and-derived-quantities)
  EXPECT_EQ(w.module_path, "layer1.0.conv1.0");
  EXPECT_EQ(w.role, qsdk::LayerRole::body);
  EXPECT_EQ(w.batch_size, 16);
  EXPECT_EQ(w.input_size, 224);
  EXPECT_EQ(log.contexts[1].target, qsdk::QuantTarget::activation);
  EXPECT_EQ(log.contexts[1].shape, (std::vector<int64_t>{1, 4, 1, 1}));
  EXPECT_EQ(log.contexts[2].target, qsdk::QuantTarget::output);
  EXPECT_EQ(log.contexts[2].shape, (std::vector<int64_t>{1, 8, 1, 1}));
  EXPECT_EQ(log.contexts[3].shape, (std::vector<int64_t>{1, 1, 10, 8}));
  EXPECT_EQ(log.contexts[4].shape, (std::vector<int64_t>{1, 8, 1, 1}));
  EXPECT_EQ(log.contexts[5].shape, (std::vector<int64_t>{1, 10, 1, 1}));
  EXPECT_EQ(log.contexts[3].role, qsdk::LayerRole::head);
}

TEST(LayerFactory, OverridesByRoleAndGlobLastWins) {
  qtest::QuantizerLog log;
  Table q = base_quant();
  List overrides;
  // 1: shortcuts off.
  overrides.push_back(Table{{"match", Table{{"role", List{"shortcut"}}}}, {"weight", "none"}, {"activation", "none"}});
  // 2: layer1 at 4 bits by merge (no type).
  overrides.push_back(Table{{"match", Table{{"path", List{"layer1.*"}}}}, {"weight", Table{{"bits", 4}}}});
  // 3: layer1.1.* gets a different quantizer type (replace, keeps nothing of the default).
  overrides.push_back(Table{{"match", Table{{"path", List{"layer1.1.*"}}}}, {"weight", Table{{"type", "other"}}}});
  // 4: a body conv matched by role AND path: activation none.
  overrides.push_back(
      Table{{"match", Table{{"role", List{"body"}}, {"path", List{"*.conv2.*"}}}}, {"activation", "none"}});
  // 5: merging onto a layer the role policy left FP re-enables it from the default.
  overrides.push_back(Table{{"match", Table{{"role", List{"stem"}}}}, {"weight", Table{{"bits", 8}}}});
  q["override"] = overrides;
  qhost::LayerFactory f(q, log.maker(), 8, 32);
  f.conv2d("conv1", LayerRole::stem, conv3(3, 8));
  f.conv2d("layer1.0.conv1.0", LayerRole::body, conv3(8, 8));
  f.conv2d("layer1.1.conv2.0", LayerRole::body, conv3(8, 8));
  f.conv2d("layer2.0.skip.1", LayerRole::shortcut, torch::nn::Conv2dOptions(8, 16, 1).bias(false));
  f.conv2d("layer2.0.conv2.0", LayerRole::body, conv3(16, 16));
  const auto& r = f.records();
  EXPECT_EQ(r[0].weight.str(), "testq/8b");
  EXPECT_FALSE(r[0].activation.active());
  EXPECT_EQ(r[1].weight.str(), "testq/4b");
  EXPECT_EQ(r[1].activation.str(), "testq/2b");
  EXPECT_EQ(r[2].weight.type, "other");
  EXPECT_FALSE(r[2].activation.active());
  EXPECT_FALSE(r[3].weight.active());
  EXPECT_FALSE(r[3].activation.active());
  EXPECT_EQ(r[4].weight.str(), "testq/2b");
  EXPECT_FALSE(r[4].activation.active());
  // The merged table passed to the maker keeps the default's type.
  bool found = false;
  for (size_t i = 0; i < log.contexts.size(); ++i)
    if (log.contexts[i].module_path == "layer1.0.conv1.0" && log.contexts[i].target == qsdk::QuantTarget::weight) {
      EXPECT_EQ(log.tables[i].at("type").as_string(), "testq");
      EXPECT_EQ(log.tables[i].at("bits").as_int(), 4);
      found = true;
    }
  EXPECT_TRUE(found);
}

TEST(LayerFactory, NoneTypeDisablesAndAbsentDefaultsStayFp) {
  qtest::QuantizerLog log;
  Table q{{"weight", lsq(2)}, {"activation", Table{{"type", "none"}}}};
  qhost::LayerFactory f(q, log.maker(), 8, 32);
  f.conv2d("a", LayerRole::body, conv3(3, 8));
  EXPECT_TRUE(f.records()[0].weight.active());
  EXPECT_FALSE(f.records()[0].activation.active());
  EXPECT_FALSE(f.records()[0].output.active());
}

TEST(LayerFactory, PaddingBeforeOrAfterActivationQuantization) {
  // offset 0.5 makes quantized zeros visible: padding first quantizes the
  // border zeros into 0.5; padding after keeps them 0.
  Table q{{"activation", Table{{"type", "testq"}, {"bits", 8}, {"offset", 0.5}}}};
  auto x = torch::zeros({1, 1, 3, 3});
  for (bool after : {false, true}) {
    qtest::QuantizerLog log;
    Table qq = q;
    qq["padding_after_quant"] = after;
    qhost::LayerFactory f(qq, log.maker(), 1, 3);
    auto conv = f.conv2d("c", LayerRole::body, torch::nn::Conv2dOptions(1, 1, 3).padding(1).bias(false));
    torch::NoGradGuard ng;
    conv->weight().fill_(1.0);
    auto y = conv->forward(x);
    // Centre output sees 9 quantized values; a corner sees 4 inner + 5 border.
    EXPECT_NEAR(y[0][0][1][1].item<double>(), 4.5, 1e-6);
    EXPECT_NEAR(y[0][0][0][0].item<double>(), after ? 2.0 : 4.5, 1e-6) << "after=" << after;
  }
}

TEST(LayerFactory, QuantizedConvMatchesManualComputation) {
  qtest::QuantizerLog log;
  qhost::LayerFactory f(Table{{"weight", lsq(3)}, {"activation", lsq(2)}}, log.maker(), 1, 8);
  auto conv = f.conv2d("c", LayerRole::body, torch::nn::Conv2dOptions(2, 3, 3).padding(1).stride(2).bias(true));
  auto x = torch::randn({2, 2, 8, 8});
  auto wq = torch::round(conv->weight() * 8) / 8;
  auto xq = torch::round(torch::constant_pad_nd(x, {1, 1, 1, 1}) * 4) / 4;
  torch::Tensor bias;
  for (const auto& p : conv->named_parameters(false))
    if (p.key() == "bias") bias = p.value();
  ASSERT_TRUE(bias.defined());
  auto expected = torch::nn::functional::conv2d(xq, wq, torch::nn::functional::Conv2dFuncOptions().bias(bias).stride(2));
  EXPECT_TRUE(torch::allclose(conv->forward(x), expected, 1e-5, 1e-6));
  // Gradients reach the float weight through the quantizer.
  conv->forward(x).sum().backward();
  EXPECT_TRUE(conv->weight().grad().defined());
}

TEST(LayerFactory, WeightTransformsApplyToQuantizedWeightsOnly) {
  qtest::QuantizerLog log;
  qhost::LayerFactory f(Table{{"weight", lsq(8)}}, log.maker(), 1, 8);
  auto q = f.conv2d("q", LayerRole::body, conv3(1, 1));
  auto plain = f.conv2d("conv1", LayerRole::stem, conv3(1, 1));
  std::vector<std::string> seen;
  // Added after the layers were made: still applies.
  f.add_weight_transform([&](const torch::Tensor& w, const std::string& path) {
    seen.push_back(path);
    return torch::zeros_like(w);
  });
  auto x = torch::randn({1, 1, 4, 4});
  EXPECT_EQ(q->forward(x).abs().sum().item<double>(), 0.0);
  EXPECT_GT(plain->forward(x).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(seen, std::vector<std::string>{"q"});
}

TEST(LayerFactory, LinearQuantizesWeightAsFourDims) {
  qtest::QuantizerLog log;
  Table q = base_quant();
  q["quantize_head"] = true;
  qhost::LayerFactory f(q, log.maker(), 1, 8);
  auto fc = f.linear("fc", LayerRole::head, torch::nn::LinearOptions(6, 4));
  auto x = torch::randn({3, 6});
  auto expected = torch::linear(torch::round(x * 4) / 4, torch::round(fc->weight() * 4) / 4,
                                fc->named_parameters(false)["bias"]);
  EXPECT_TRUE(torch::allclose(fc->forward(x), expected, 1e-5, 1e-6));
}

TEST(LayerFactory, BadTablesAreConfigErrorsWithPlace) {
  auto expect_error = [](const Table& q, const std::string& place) {
    qtest::QuantizerLog log;
    try {
      qhost::LayerFactory f(q, log.maker(), 1, 8);
      ADD_FAILURE() << "no error for " << place;
    } catch (const qsdk::Error& e) {
      EXPECT_EQ(e.category(), qsdk::ErrorCategory::config);
      EXPECT_EQ(e.place(), place) << e.what();
    }
  };
  expect_error(Table{{"weight", Table{{"bits", 2}}}}, "quant.weight");
  expect_error(Table{{"override", List{Table{{"match", Table{{"role", List{"stemm"}}}}}}}}, "quant.override[0].match.role");
  expect_error(Table{{"override", List{Table{{"activation", Table{{"bits", 2}}}}}}}, "quant.override[0].activation");
  expect_error(Table{{"override", List{Table{{"weights", "none"}}}}}, "quant.override[0].weights");
  expect_error(Table{{"real_skip", 1}}, "quant.real_skip");
}

TEST(LayerFactory, GlobMatchesAcrossDots) {
  qhost::QuantOverride o;
  o.paths = {"layer?.0.*"};
  EXPECT_TRUE(o.matches("layer2.0.skip.1", LayerRole::shortcut));
  EXPECT_FALSE(o.matches("layer2.1.conv1.0", LayerRole::body));
  o.roles = {LayerRole::body};
  EXPECT_FALSE(o.matches("layer2.0.skip.1", LayerRole::shortcut));
}

}  // namespace

namespace {

TEST(QuantPolicy, OverrideWithoutTypeMergesOntoTheDefaultAndRemembersWhatItWrote) {
  Table q{{"weight", Table{{"type", "testq"}, {"bits", 2}, {"offset", 0.5}}}};
  q["override"] = List{Table{{"match", Table{{"path", List{"layer1.*"}}}}, {"weight", Table{{"bits", 4}}}},
                       Table{{"match", Table{{"role", List{"body"}}}}, {"weight", Table{{"type", "other"}}}}};
  const auto p = qhost::QuantPolicy::from_table(q);
  ASSERT_EQ(p.overrides.size(), 2u);
  const auto& merged = *p.overrides[0].at(qsdk::QuantTarget::weight);
  EXPECT_TRUE(merged.merged_onto_default);
  EXPECT_EQ(merged.written, std::vector<std::string>{"bits"});
  EXPECT_EQ(merged.choice->at("type").as_string(), "testq");
  EXPECT_EQ(merged.choice->at("bits").as_int(), 4);
  EXPECT_EQ(merged.choice->at("offset").as_double(), 0.5);
  EXPECT_FALSE(p.overrides[1].at(qsdk::QuantTarget::weight)->merged_onto_default);
  EXPECT_FALSE(p.overrides[0].at(qsdk::QuantTarget::activation));
  // Last matching override wins; the role-FP stem ignores the default.
  EXPECT_EQ(p.resolve("layer1.0.conv1", LayerRole::body, qsdk::QuantTarget::weight)->at("type").as_string(), "other");
  EXPECT_EQ(p.resolve("layer1.0.skip", LayerRole::shortcut, qsdk::QuantTarget::weight)->at("bits").as_int(), 4);
  EXPECT_FALSE(p.resolve("conv1", LayerRole::stem, qsdk::QuantTarget::weight));
}

TEST(QuantPolicy, KeysParseOnceWithMessagesForEveryMalformedShape) {
  auto ok = qhost::QuantKey::parse("override[12].activation.bits");
  ASSERT_TRUE(ok.key);
  EXPECT_EQ(ok.key->override_index, 12);
  EXPECT_EQ(ok.key->target, qsdk::QuantTarget::activation);
  EXPECT_EQ(ok.key->option, "bits");
  EXPECT_EQ(ok.key->str(), "override[12].activation.bits");
  EXPECT_EQ(qhost::QuantKey::parse("weight.bits").key->str(), "weight.bits");
  EXPECT_EQ(qhost::QuantKey::parse("bits").message, "'quant.bits' names no quantizer option");
  EXPECT_EQ(qhost::QuantKey::parse("override[1x].weight.bits").message, "there is no [[quant.override]] entry 1x");
  EXPECT_EQ(qhost::QuantKey::parse("override[-1].weight.bits").message, "there is no [[quant.override]] entry -1");
  EXPECT_EQ(qhost::QuantKey::parse("override[1]weight.bits").message, "'quant.override[1]weight.bits' is not a quantizer option");
  const auto typo = qhost::QuantKey::parse("weights.bits");
  EXPECT_EQ(typo.message, "'weights' is not a quantized tensor");
  EXPECT_NE(typo.hint.find("weight"), std::string::npos) << typo.hint;
}

TEST(QuantPolicy, SetOptionChangesOneTableAndRefusesAbsentOnes) {
  Table q{{"activation", Table{{"type", "testq"}, {"bits", 4}}}};
  q["override"] = List{Table{{"match", Table{{"role", List{"head"}}}}, {"activation", "none"}}};
  auto p = qhost::QuantPolicy::from_table(q);
  EXPECT_EQ(p.set_option(*qhost::QuantKey::parse("activation.bits").key, Value(int64_t{2})), Value(int64_t{4}));
  EXPECT_EQ(p.activation->at("bits").as_int(), 2);
  EXPECT_TRUE(p.set_option(*qhost::QuantKey::parse("activation.offset").key, Value(0.25)).is_none());
  EXPECT_THROW(p.set_option(*qhost::QuantKey::parse("weight.bits").key, Value(int64_t{2})), qsdk::Error);
  EXPECT_THROW(p.set_option(*qhost::QuantKey::parse("override[0].activation.bits").key, Value(int64_t{2})),
               qsdk::Error);
  EXPECT_THROW(p.set_option(*qhost::QuantKey::parse("override[3].activation.bits").key, Value(int64_t{2})),
               qsdk::Error);
}

TEST(QuantPolicy, RoleAndTargetNamesComeFromTheSdk) {
  for (LayerRole r : qsdk::kAllLayerRoles) EXPECT_EQ(qsdk::layer_role_from_string(qsdk::to_string(r)), r);
  for (auto t : qsdk::kAllQuantTargets) EXPECT_EQ(qsdk::quant_target_from_string(qsdk::to_string(t)), t);
  EXPECT_FALSE(qsdk::layer_role_from_string("stemm"));
  EXPECT_FALSE(qsdk::quant_target_from_string("weights"));
}

}  // namespace
