// The quantizer plugins as modules: registration, state_dict round trip,
// warm-up and counter semantics, option errors.
#include "../golden/test_plugins.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

namespace {

qsdk::QuantizerContext context(qsdk::QuantTarget t) {
  qsdk::QuantizerContext c;
  c.target = t;
  c.shape = t == qsdk::QuantTarget::weight ? std::vector<int64_t>{8, 4, 3, 3} : std::vector<int64_t>{1, 4, 1, 1};
  c.module_path = "layer1.0.conv1";
  c.batch_size = 2;
  c.input_size = 6;
  return c;
}

struct Config {
  std::string plugin;
  qsdk::QuantTarget target;
  qsdk::Table options;
};

std::vector<Config> configs() {
  using T = qsdk::QuantTarget;
  return {
      {"lsq", T::activation, {{"bits", 2}, {"quant_group", 4}}},
      {"lsq", T::weight, {{"bits", 3}, {"adaptive", "var-mean"}, {"gamma", true}}},
      {"dorefa", T::activation, {{"bits", 2}, {"boundary", 2.0}}},
      {"dorefa", T::weight, {{"bits", 1}, {"binarize", true}}},
      {"pact", T::activation, {{"bits", 3}}},
      {"pact", T::weight, {{"bits", 2}}},
      {"nonuniform", T::activation, {{"bits", 2}, {"scale", 3.0}, {"closed_form", true}}},
      {"nonuniform", T::weight, {{"levels", 3}, {"quant_group", 2}}},
      {"lqnet", T::activation, {{"bits", 2}, {"quant_group", 2}, {"custom_update", true}}},
      {"lqnet", T::weight, {{"bits", 2}, {"adaptive", "mean-var"}}},
      {"xnor", T::activation, {{"custom", "channel"}, {"grad_type", "Triangle"}}},
      {"xnor", T::weight, {{"gamma", true}, {"quant_group", 1}, {"stable", 1}}},
  };
}

torch::Tensor input_for(qsdk::QuantTarget t) {
  return t == qsdk::QuantTarget::weight ? torch::randn({8, 4, 3, 3}) * 0.3 : torch::randn({2, 4, 6, 6}) * 0.8 + 0.5;
}

TEST(QuantModules, EveryPluginRegistersItsQuantizer) {
  for (const char* p : {"lsq", "dorefa", "pact", "nonuniform", "lqnet", "xnor"}) {
    const auto& spec = qtool_golden::quantizer_spec(p);
    EXPECT_EQ(spec.kind, qsdk::Kind::quantizer);
    EXPECT_FALSE(spec.summary.empty()) << p;
    EXPECT_NE(spec.schema.find("bits"), nullptr) << p;
  }
}

TEST(QuantModules, StateDictRoundTrip) {
  torch::manual_seed(21);
  for (const auto& c : configs()) {
    SCOPED_TRACE(c.plugin + " " + qsdk::to_string(c.target));
    auto ctx = context(c.target);
    auto a = qtool_golden::make_quantizer(c.plugin, c.options, ctx);
    // Change the state: a training forward (counters, bases), and perturbed parameters.
    torch::Tensor x = input_for(c.target);
    a->train(true);
    a->forward(x);
    {
      torch::NoGradGuard ng;
      for (auto& p : a->parameters()) p.mul_(torch::rand_like(p) * 0.4 + 0.8);
    }
    std::stringstream ss;
    torch::save(std::static_pointer_cast<torch::nn::Module>(a), ss);
    auto b = qtool_golden::make_quantizer(c.plugin, c.options, ctx);
    auto bm = std::static_pointer_cast<torch::nn::Module>(b);
    torch::load(bm, ss);
    auto pa = a->named_parameters(), pb = b->named_parameters();
    auto ba = a->named_buffers(), bb = b->named_buffers();
    ASSERT_EQ(pa.size(), pb.size());
    ASSERT_EQ(ba.size(), bb.size());
    for (const auto& kv : pa) EXPECT_TRUE(torch::equal(kv.value(), pb[kv.key()])) << kv.key();
    for (const auto& kv : ba) EXPECT_TRUE(torch::equal(kv.value(), bb[kv.key()])) << kv.key();
    a->eval();
    b->eval();
    EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
  }
}

TEST(QuantModules, NamedCopyRoundTrip) {
  // The host's HDF5 checkpoints copy named parameters/buffers one by one.
  torch::manual_seed(22);
  for (const auto& c : configs()) {
    SCOPED_TRACE(c.plugin);
    auto ctx = context(c.target);
    auto a = qtool_golden::make_quantizer(c.plugin, c.options, ctx);
    a->train(true);
    a->forward(input_for(c.target));
    auto b = qtool_golden::make_quantizer(c.plugin, c.options, ctx);
    torch::NoGradGuard ng;
    for (const auto& kv : a->named_parameters()) b->named_parameters()[kv.key()].copy_(kv.value());
    for (const auto& kv : a->named_buffers()) b->named_buffers()[kv.key()].copy_(kv.value());
    for (const auto& kv : a->named_buffers()) EXPECT_TRUE(torch::equal(kv.value(), b->named_buffers()[kv.key()]));
  }
}

TEST(QuantModules, WarmupReturnsInputAndAveragesClip) {
  auto ctx = context(qsdk::QuantTarget::activation);
  auto q = qtool_golden::make_quantizer("lsq", {{"stable", 2}, {"quant_group", 1}}, ctx);
  q->train(true);
  torch::Tensor x1 = torch::randn({2, 4, 6, 6}), x2 = torch::randn({2, 4, 6, 6}) * 2;
  EXPECT_TRUE(torch::equal(q->forward(x1), x1));
  EXPECT_FLOAT_EQ(q->named_parameters()["clip_val"].item<float>(), x1.abs().max().item<float>());
  EXPECT_TRUE(torch::equal(q->forward(x2), x2));
  const float expect = (x2.abs().max().item<float>() + x1.abs().max().item<float>()) / 2;
  EXPECT_NEAR(q->named_parameters()["clip_val"].item<float>(), expect, 1e-6);
  EXPECT_FALSE(torch::equal(q->forward(x1), x1));  // third forward quantizes
  EXPECT_EQ(q->named_buffers()["iteration"].item<float>(), 3.f);
}

TEST(QuantModules, XnorAlwaysBinarisesWithoutWarmup) {
  auto ctx = context(qsdk::QuantTarget::activation);
  auto q = qtool_golden::make_quantizer("xnor", {}, ctx);
  torch::Tensor x = torch::randn({2, 4, 6, 6});
  torch::Tensor y = q->forward(x);
  EXPECT_TRUE(torch::equal(y.abs(), torch::ones_like(y)));
  EXPECT_EQ(q->named_buffers()["iteration"].item<float>(), 0.f);
  auto w = qtool_golden::make_quantizer("xnor", {{"stable", 1}}, context(qsdk::QuantTarget::weight));
  torch::Tensor wt = torch::randn({8, 4, 3, 3});
  EXPECT_TRUE(torch::equal(w->forward(wt), wt));   // counter 1 <= stable 1
  EXPECT_FALSE(torch::equal(w->forward(wt), wt));  // counter 2
}

TEST(QuantModules, LqNetFloorBitRefit) {
  // docs/methods.md#lq-net-basis-refit-qem worked example: x = (0.5, 1.2, 3.0, 0.1), basis (0.6745, 1.349).
  auto ctx = context(qsdk::QuantTarget::activation);
  ctx.shape = {1, 1, 1, 1};
  for (bool custom : {true, false}) {
    auto q = qtool_golden::make_quantizer("lqnet", {{"bits", 2}, {"custom_update", custom}}, ctx);
    q->train(true);
    torch::Tensor x = torch::tensor({0.5f, 1.2f, 3.0f, 0.1f}).reshape({1, 1, 2, 2}).requires_grad_(true);
    torch::Tensor y = q->forward(x);
    EXPECT_TRUE(torch::allclose(y.flatten(), torch::tensor({0.6745f, 1.349f, 2.0235f, 0.f}), 0, 1e-5)) << y;
    y.sum().backward();
    EXPECT_TRUE(torch::equal(x.grad().flatten(), torch::tensor({1.f, 1.f, 0.f, 1.f})));
    torch::Tensor auxil = q->named_buffers()["auxil"].flatten();
    EXPECT_TRUE(torch::allclose(auxil, torch::tensor({0.93333f, 1.63333f}), 0, 1e-4)) << auxil;
    torch::Tensor basis = q->named_buffers()["basis"].flatten();
    torch::Tensor expect = custom ? torch::tensor({0.93333f, 1.63333f}) : torch::tensor({0.70038f, 1.37743f});
    EXPECT_TRUE(torch::allclose(basis, expect, 0, 1e-4)) << basis;
  }
}

TEST(QuantModules, BadOptionsAreConfigErrors) {
  auto expect_config_error = [](const std::string& plugin, const qsdk::Table& opts, qsdk::QuantTarget t) {
    try {
      qtool_golden::make_quantizer(plugin, opts, context(t));
      ADD_FAILURE() << plugin << ": no error";
    } catch (const qsdk::Error& e) {
      EXPECT_EQ(e.category(), qsdk::ErrorCategory::config) << e.what();
      EXPECT_NE(std::string(e.what()).find("layer1.0.conv1"), std::string::npos) << e.what();
    }
  };
  using T = qsdk::QuantTarget;
  expect_config_error("lsq", {{"quant_group", 3}}, T::activation);      // 3 does not divide 4 channels
  expect_config_error("xnor", {{"bits", 2}}, T::weight);                 // XNOR needs 2 levels
  expect_config_error("nonuniform", {{"bits", 2}}, T::weight);           // weights are ternary only
  expect_config_error("nonuniform", {{"bits", 3}}, T::activation);       // at most 4 levels
  expect_config_error("dorefa", {{"bits", 2}, {"binarize", true}}, T::weight);
  expect_config_error("pact", {{"bits", 2}}, T::output);
  expect_config_error("lsq", {{"adaptive", "var-mean"}}, T::activation);
  expect_config_error("lqnet", {{"adaptive", "min"}}, T::weight);
}

}  // namespace
