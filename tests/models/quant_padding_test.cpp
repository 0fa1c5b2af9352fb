// Quantized convolutions that pad before quantizing: with a quantizer that
// declares qsdk::ZeroPaddingAware (LSQ on [0, s], DoReFa, PACT with alpha > 0)
// the convolution pads by
// itself; values and gradients must equal the explicit pad-then-quantize path.
#include <torch/torch.h>

#include "quant/layer_factory.hpp"
#include "quant/quant_layers.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <qsdk/quantizer.hpp>
#include <qsdk/registrar.hpp>

#include <map>
#include <string>
#include <utility>
#include <variant>

namespace {

using qsdk::LayerRole;
using qsdk::Table;

qhost::QuantizerMaker maker(const std::string& plugin) {
  const auto& spec = qtest::quantizer_spec(plugin);
  const auto factory = std::get<qsdk::QuantizerFactory>(spec.factory);
  return [factory](const Table& t, const qsdk::QuantizerContext& ctx) { return factory(t, ctx); };
}

struct Result {
  torch::Tensor y, gx, gw, gclip_a, gclip_w;
};

torch::Tensor clip_grad(const std::shared_ptr<qsdk::QuantizerImpl>& q) {
  for (const auto& p : q->named_parameters(false))
    if (p.key() == "clip_val") return p.value().grad().clone();
  return {};
}

// One forward + backward of `conv` (explicitly: pad, quantize, convolve with
// padding 0, when `explicit_pad`) on x with upstream gradient g.
Result run(qhost::QuantConv2dImpl& conv, const torch::Tensor& x0, const torch::Tensor& g, bool explicit_pad) {
  conv.zero_grad();
  auto x = x0.detach().requires_grad_(true);
  torch::Tensor y;
  if (explicit_pad) {
    const auto& q = conv.quantizers();
    auto w = q.weight->forward(conv.weight());
    auto xq = q.activation->forward(torch::constant_pad_nd(x, {1, 1, 1, 1}, 0.0));
    y = torch::conv2d(xq, w, torch::Tensor(), torch::IntArrayRef({1, 1}), torch::IntArrayRef({0, 0}));
  } else {
    y = conv.forward(x);
  }
  y.backward(g);
  return {y.detach(), x.grad().clone(), conv.weight().grad().clone(), clip_grad(conv.quantizers().activation),
          clip_grad(conv.quantizers().weight)};
}

void expect_same(const Result& a, const Result& b) {
  // Equal up to the order of the clip gradient's float sums.
  EXPECT_TRUE(torch::equal(a.y, b.y));
  EXPECT_TRUE(torch::equal(a.gx, b.gx));
  EXPECT_TRUE(torch::allclose(a.gw, b.gw, 1e-6, 1e-6));
  for (const auto& [ga, gb] : {std::pair(a.gclip_a, b.gclip_a), std::pair(a.gclip_w, b.gclip_w)}) {
    ASSERT_EQ(ga.defined(), gb.defined());
    if (ga.defined()) EXPECT_TRUE(torch::allclose(ga, gb, 1e-5, 1e-6)) << ga << " vs " << gb;
  }
}

std::shared_ptr<qhost::QuantConv2dImpl> make_conv(const Table& activation, const std::string& plugin = "lsq") {
  qhost::LayerFactory f(Table{{"weight", Table{{"type", plugin}, {"bits", 2}}}, {"activation", activation}},
                        maker(plugin), 4, 12);
  auto layer = f.conv2d("c", LayerRole::body, torch::nn::Conv2dOptions(3, 5, 3).padding(1).bias(false));
  auto conv = std::dynamic_pointer_cast<qhost::QuantConv2dImpl>(layer);
  EXPECT_TRUE(conv);
  return conv;
}

TEST(QuantPadding, LsqUnsignedActivationCommutesWithZeroPadding) {
  torch::manual_seed(3);
  auto conv = make_conv(Table{{"type", "lsq"}, {"bits", 2}, {"boundary", 1.5}});
  ASSERT_TRUE(conv);
  const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().activation.get());
  ASSERT_NE(traits, nullptr);
  EXPECT_TRUE(traits->commutes_with_zero_padding());
  // Negative inputs clamp to 0 as the padded zeros do; values beyond s clip.
  auto x = torch::randn({4, 3, 12, 12}) * 1.2;
  auto g = torch::randn({4, 5, 12, 12});
  expect_same(run(*conv, x, g, false), run(*conv, x, g, true));
}

TEST(QuantPadding, DorefaAndPactActivationsCommuteWithZeroPadding) {
  torch::manual_seed(5);
  for (const std::string plugin : {"dorefa", "pact"}) {
    SCOPED_TRACE(plugin);
    auto conv = make_conv(Table{{"type", plugin}, {"bits", 2}, {"boundary", 1.5}}, plugin);
    ASSERT_TRUE(conv);
    const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().activation.get());
    ASSERT_NE(traits, nullptr);
    EXPECT_TRUE(traits->commutes_with_zero_padding());
    const auto* weight_traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().weight.get());
    ASSERT_NE(weight_traits, nullptr);
    EXPECT_FALSE(weight_traits->commutes_with_zero_padding());
    // Some inputs beyond the clip, so that PACT's alpha gradient is not zero.
    auto x = torch::randn({4, 3, 12, 12}) * 1.2;
    auto g = torch::randn({4, 5, 12, 12});
    expect_same(run(*conv, x, g, false), run(*conv, x, g, true));
  }
}

TEST(QuantPadding, PactNonPositiveAlphaKeepsTheExplicitPad) {
  // With alpha <= 0, clamp(0, 0, alpha) is alpha, not 0.
  auto conv = make_conv(Table{{"type", "pact"}, {"bits", 2}}, "pact");
  ASSERT_TRUE(conv);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : conv->quantizers().activation->named_parameters(false))
      if (p.key() == "clip_val") p.value().fill_(-0.5);
  }
  const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().activation.get());
  ASSERT_NE(traits, nullptr);
  EXPECT_FALSE(traits->commutes_with_zero_padding());
}

TEST(QuantPadding, SignedOrSteScaleActivationsKeepTheExplicitPad) {
  torch::manual_seed(4);
  for (const Table& a : {Table{{"type", "lsq"}, {"bits", 2}, {"half_range", "false"}},
                         Table{{"type", "lsq"}, {"bits", 2}, {"grad_type", "STE-scale"}}}) {
    auto conv = make_conv(a);
    ASSERT_TRUE(conv);
    const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().activation.get());
    ASSERT_NE(traits, nullptr);
    EXPECT_FALSE(traits->commutes_with_zero_padding());
    // A tenth inside [0, s]: STE-scale's factor sqrt(numel / inside) is >= 2
    // without the padded zeros and < 2 (so not applied) with them.
    auto x = torch::where(torch::rand({4, 3, 12, 12}) < 0.1, torch::rand({4, 3, 12, 12}) * 0.9,
                          torch::rand({4, 3, 12, 12}) + 2.0);
    auto g = torch::randn({4, 5, 12, 12});
    expect_same(run(*conv, x, g, false), run(*conv, x, g, true));
  }
}

TEST(QuantPadding, ZeroClipKeepsTheExplicitPad) {
  // x / 0 is NaN at the padded zeros, so a zero step does not commute.
  auto conv = make_conv(Table{{"type", "lsq"}, {"bits", 2}});
  ASSERT_TRUE(conv);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : conv->quantizers().activation->named_parameters(false))
      if (p.key() == "clip_val") p.value().zero_();
  }
  const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(conv->quantizers().activation.get());
  ASSERT_NE(traits, nullptr);
  EXPECT_FALSE(traits->commutes_with_zero_padding());
}

}  // namespace
