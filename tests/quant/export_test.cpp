// qsdk::Exportable of the bundled quantizers (docs/methods.md#export-to-onnx):
// the integer form each one reports reproduces its own eval-mode forward,
// codes * scale for weights and the QuantizeLinear/DequantizeLinear formula for
// activations, with the codes each method allows; the forms that do not exist
// are refused with the method and the reason. The level forms
// (qsdk::LevelExportable: a level table by codes, thresholds and levels)
// reproduce forward bit for bit, at the thresholds too.
#include "../golden/test_plugins.hpp"

#include <qsdk/error.hpp>
#include <qsdk/exportable.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>

namespace {

using T = qsdk::QuantTarget;

qsdk::QuantizerContext context(T t) {
  qsdk::QuantizerContext c;
  c.target = t;
  c.shape = t == T::weight ? std::vector<int64_t>{8, 4, 3, 3} : std::vector<int64_t>{1, 8, 1, 1};
  c.module_path = "layer1.0.conv1";
  c.batch_size = 2;
  c.input_size = 6;
  return c;
}

/// The quantizer in eval mode with its learned clips and gammas spread over
/// [0.5, 1.5], so per-group steps differ.
std::shared_ptr<qsdk::QuantizerImpl> make(const std::string& plugin, T t, const qsdk::Table& options) {
  auto q = qtool_golden::make_quantizer(plugin, options, context(t));
  torch::NoGradGuard no_grad;
  for (auto& p : q->named_parameters()) {
    if (p.key() == "clip_val" || p.key() == "gamma") p.value().uniform_(0.5, 1.5);
  }
  q->eval();
  return q;
}

const qsdk::Exportable& exportable(const std::shared_ptr<qsdk::QuantizerImpl>& q) {
  auto* e = dynamic_cast<const qsdk::Exportable*>(q.get());
  if (!e) throw std::runtime_error("not qsdk::Exportable");
  return *e;
}

std::set<int64_t> values(const torch::Tensor& codes) {
  std::set<int64_t> s;
  auto c = codes.to(torch::kLong).flatten();
  for (int64_t i = 0; i < c.numel(); ++i) s.insert(c[i].item<int64_t>());
  return s;
}

struct WeightCase {
  std::string plugin;
  qsdk::Table options;
  std::set<int64_t> allowed;  ///< codes the method may use
  int64_t scales;             ///< 1 per tensor, 8 per output channel
};

TEST(QuantExport, WeightCodesTimesScaleAreTheQuantizedWeight) {
  torch::manual_seed(5);
  const std::vector<WeightCase> cases = {
      {"lsq", {{"bits", 2}}, {-3, -1, 1, 3}, 8},
      {"lsq", {{"bits", 2}, {"quant_group", 1}}, {-3, -1, 1, 3}, 1},
      {"lsq", {{"bits", 2}, {"quant_group", 4}}, {-3, -1, 1, 3}, 8},  // 4 groups of 2 output channels
      {"lsq", {{"bits", 3}, {"adaptive", "var-mean"}, {"gamma", true}}, {-7, -5, -3, -1, 1, 3, 5, 7}, 8},
      {"lsq", {{"bits", 2}, {"half_range", "true"}}, {0, 1, 2, 3}, 8},
      {"dorefa", {{"bits", 2}}, {-3, -1, 1, 3}, 1},
      {"dorefa", {{"bits", 2}, {"boundary", 0.5}}, {-6, -4, -2, 0, 2, 4, 6}, 1},  // n / c = 6
      {"dorefa", {{"bits", 1}, {"binarize", true}}, {-1, 1}, 1},
      {"dorefa", {{"bits", 2}, {"gamma", true}}, {-3, -1, 1, 3}, 8},
      {"pact", {{"bits", 2}}, {-3, -1, 1, 3}, 1},
      {"xnor", {}, {-1, 1}, 8},
      {"xnor", {{"gamma", true}, {"quant_group", 1}}, {-1, 1}, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.plugin + " " + qsdk::Value(c.options).to_string());
    auto q = make(c.plugin, T::weight, c.options);
    const torch::Tensor w = torch::randn({8, 4, 3, 3}) * 0.4;
    qsdk::WeightExport e;
    ASSERT_NO_THROW(e = exportable(q).export_weight(w));
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = q->forward(w);
    }
    ASSERT_EQ(e.codes.sizes(), w.sizes());
    EXPECT_TRUE(e.codes.scalar_type() == torch::kChar);
    ASSERT_EQ(e.scale.numel(), c.scales);
    std::vector<int64_t> bshape{-1, 1, 1, 1};
    if (e.scale.numel() == 1) bshape = {1, 1, 1, 1};
    EXPECT_EQ(e.axis, 0);
    const torch::Tensor deq = e.codes.to(torch::kFloat) * e.scale.reshape(bshape);
    EXPECT_LE((deq - y).abs().max().item<double>(), 1e-6 * (1 + y.abs().max().item<double>()));
    for (int64_t v : values(e.codes)) EXPECT_TRUE(c.allowed.count(v)) << "code " << v;
  }
}

struct ActivationCase {
  std::string plugin;
  qsdk::Table options;
  int64_t qmin, qmax;
  bool is_signed;
  int64_t scales;
};

TEST(QuantExport, ActivationQuantizeDequantizeIsTheQuantizer) {
  torch::manual_seed(6);
  const std::vector<ActivationCase> cases = {
      {"lsq", {{"bits", 2}}, 0, 3, false, 1},
      {"lsq", {{"bits", 4}, {"quant_group", 4}}, 0, 15, false, 8},  // 4 groups of 2 channels
      {"lsq", {{"levels", 3}, {"half_range", "false"}}, -1, 1, true, 1},
      {"lsq", {{"levels", 5}, {"half_range", "false"}}, -2, 2, true, 1},
      {"dorefa", {{"bits", 2}, {"boundary", 2.0}}, 0, 3, false, 1},
      {"pact", {{"bits", 3}}, 0, 7, false, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.plugin + " " + qsdk::Value(c.options).to_string());
    auto q = make(c.plugin, T::activation, c.options);
    qsdk::ActivationExport e;
    ASSERT_NO_THROW(e = exportable(q).export_activation());
    EXPECT_EQ(e.qmin, c.qmin);
    EXPECT_EQ(e.qmax, c.qmax);
    EXPECT_EQ(e.zero_point, 0);
    EXPECT_EQ(e.is_signed, c.is_signed);
    ASSERT_EQ(e.scale.numel(), c.scales);
    const torch::Tensor x = torch::randn({2, 8, 6, 6}) * 1.5;
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = q->forward(x);
    }
    const torch::Tensor s = e.scale.numel() == 1 ? e.scale.reshape({1, 1, 1, 1}) : e.scale.reshape({1, -1, 1, 1});
    const torch::Tensor qdq =
        (torch::clamp(torch::round(x / s) + e.zero_point, e.qmin, e.qmax) - e.zero_point) * s;
    EXPECT_LE((qdq - y).abs().max().item<double>(), 1e-5 * (1 + y.abs().max().item<double>()));
  }
}

/// Expects `fn` to throw a config error whose text has every `needles`.
template <class Fn>
void expect_refused(Fn&& fn, std::initializer_list<const char*> needles) {
  try {
    fn();
    ADD_FAILURE() << "not refused";
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::config);
    const std::string text = e.what();
    for (const char* n : needles) EXPECT_NE(text.find(n), std::string::npos) << "missing '" << n << "' in " << text;
  }
}

TEST(QuantExport, FormsThatDoNotExistAreRefused) {
  const torch::Tensor w = torch::randn({8, 4, 3, 3});
  expect_refused([&] { exportable(make("lsq", T::activation, {{"bits", 2}, {"half_range", "false"}})).export_activation(); },
                 {"layer1.0.conv1", "lsq activation quantizer has no exact ONNX form", "no level at 0"});
  expect_refused([&] { exportable(make("xnor", T::activation, {})).export_activation(); },
                 {"xnor activation quantizer has no exact ONNX form", "sign(x)"});
  expect_refused([&] { exportable(make("dorefa", T::weight, {{"bits", 2}, {"boundary", 0.7}})).export_weight(w); },
                 {"dorefa weight quantizer has no exact ONNX form", "not an integer"});
  expect_refused([&] { exportable(make("lsq", T::weight, {{"bits", 2}, {"quant_group", 16}})).export_weight(w); },
                 {"do not follow one axis"});
  expect_refused([&] { exportable(make("lsq", T::weight, {{"bits", 2}, {"stable", 3}})).export_weight(w); },
                 {"warm-up"});
  expect_refused([&] { exportable(make("lsq", T::output, {{"levels", 3}, {"gamma", true}})).export_activation(); },
                 {"gamma"});
  // LQ-Net has learned, unequally spaced levels: no affine form, only the level form.
  EXPECT_EQ(dynamic_cast<const qsdk::Exportable*>(make("lqnet", T::weight, {{"bits", 2}}).get()), nullptr);
  expect_refused([&] { exportable(make("nonuniform", T::activation, {{"bits", 2}})).export_activation(); },
                 {"nonuniform activation quantizer has no exact ONNX form", "thresholds"});
}

TEST(QuantExport, ExportChangesNoState) {
  auto q = make("lsq", T::weight, {{"bits", 2}, {"stable", 1}});
  {
    torch::NoGradGuard no_grad;
    q->forward(torch::randn({8, 4, 3, 3}));  // past the warm-up
  }
  std::vector<torch::Tensor> before;
  for (const auto& t : q->buffers()) before.push_back(t.clone());
  for (const auto& t : q->parameters()) before.push_back(t.detach().clone());
  exportable(q).export_weight(torch::randn({8, 4, 3, 3}));
  size_t i = 0;
  for (const auto& t : q->buffers()) EXPECT_TRUE(t.equal(before[i++]));
  for (const auto& t : q->parameters()) EXPECT_TRUE(t.detach().equal(before[i++]));
}

const qsdk::LevelExportable& level_form(const std::shared_ptr<qsdk::QuantizerImpl>& q) {
  auto* e = dynamic_cast<const qsdk::LevelExportable*>(q.get());
  if (!e) throw std::runtime_error("not qsdk::LevelExportable");
  return *e;
}

/// One training forward (LQ-Net refits its basis and leaves its warm-up), then eval.
void train_once(const std::shared_ptr<qsdk::QuantizerImpl>& q, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  q->train();
  q->forward(x);
  q->eval();
}

/// LevelActivationExport's definition: the last threshold passed picks the level.
torch::Tensor apply_levels(const qsdk::LevelActivationExport& e, const torch::Tensor& x) {
  const bool one = e.thresholds.dim() == 1;
  const auto level = [&](int64_t i) {
    return one ? e.levels[i].reshape({1, 1, 1, 1}) : e.levels.select(1, i).reshape({1, -1, 1, 1});
  };
  torch::Tensor y = level(0).expand(x.sizes()).clone();
  for (int64_t i = 0; i + 1 < e.levels.size(-1); ++i) {
    const torch::Tensor t = one ? e.thresholds[i].reshape({1, 1, 1, 1}) : e.thresholds.select(1, i).reshape({1, -1, 1, 1});
    const torch::Tensor pass = e.upper_at_ties ? (x < t).logical_not() : x > t;
    y = torch::where(pass, level(i + 1), y);
  }
  return y;
}

/// `x` with, in its first sample, every threshold and its float neighbours
/// (where the quantizer's tie-breaking decides).
torch::Tensor with_thresholds(torch::Tensor x, const qsdk::LevelActivationExport& e) {
  const torch::Tensor t = e.thresholds.reshape({-1});
  std::vector<float> v;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float f = t[i].item<float>();
    if (!std::isfinite(f)) continue;
    v.insert(v.end(), {std::nextafter(f, -INFINITY), f, std::nextafter(f, INFINITY)});
  }
  v.insert(v.end(), {0.f, -0.f, std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()});
  torch::Tensor flat = x.reshape({-1});
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(v.size()), flat.numel());
  flat.slice(0, 0, n).copy_(torch::tensor(v).slice(0, 0, n));
  return x;
}

TEST(QuantExport, LevelWeightTableByCodesIsTheQuantizedWeight) {
  torch::manual_seed(7);
  struct Case {
    qsdk::Table options;
    int64_t tables;  ///< 1 per tensor, 8 per output channel
  };
  const std::vector<Case> cases = {
      {{{"bits", 2}}, 8},
      {{{"bits", 2}, {"quant_group", 1}}, 1},
      {{{"bits", 3}, {"adaptive", "mean-var"}}, 8},
      {{{"bits", 2}, {"half_range", "true"}, {"custom_update", true}}, 8},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("lqnet " + qsdk::Value(c.options).to_string());
    auto q = make("lqnet", T::weight, c.options);
    const torch::Tensor w = torch::randn({8, 4, 3, 3}) * 0.3;
    EXPECT_TRUE(level_form(q).uses_levels());
    // Still in the warm-up (no training forward yet): forward returns w.
    expect_refused([&] { level_form(q).export_weight_levels(w); }, {"lqnet weight quantizer", "warm-up"});
    train_once(q, w);
    qsdk::LevelWeightExport e;
    ASSERT_NO_THROW(e = level_form(q).export_weight_levels(w));
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = q->forward(w);
    }
    ASSERT_EQ(e.codes.sizes(), w.sizes());
    EXPECT_EQ(e.codes.scalar_type(), torch::kByte);
    const int64_t L = int64_t{1} << c.options.at("bits").as_int();
    EXPECT_EQ(e.levels.size(-1), L);
    EXPECT_EQ(c.tables == 1 ? e.levels.dim() : e.levels.size(0), c.tables == 1 ? 1 : 8);
    for (int64_t v : values(e.codes)) EXPECT_TRUE(v >= 0 && v < L) << "code " << v;
    EXPECT_LE(static_cast<int64_t>(values(e.codes).size()), L);
    const torch::Tensor table = e.levels.dim() == 1 ? e.levels.reshape({1, -1}).expand({8, L}) : e.levels;
    const torch::Tensor back = table.gather(1, e.codes.to(torch::kLong).reshape({8, -1})).view(w.sizes());
    EXPECT_TRUE(back.equal(y)) << "max |diff| " << (back - y).abs().max().item<double>();
  }
}

TEST(QuantExport, ThresholdFormIsTheActivationQuantizerBitForBit) {
  torch::manual_seed(8);
  struct Case {
    std::string plugin;
    qsdk::Table options;
    int64_t levels;
    bool upper_at_ties;
  };
  const std::vector<Case> cases = {
      {"lqnet", {{"bits", 2}}, 4, false},
      {"lqnet", {{"bits", 3}, {"quant_group", 4}}, 8, false},  // 4 groups of 2 channels
      {"lqnet", {{"bits", 2}, {"half_range", "false"}, {"scale", 0.3}}, 4, false},
      {"nonuniform", {{"bits", 2}, {"scale", 3.0}}, 4, false},
      {"nonuniform", {{"bits", 2}, {"quant_group", 8}}, 4, false},  // one slope set per channel
      {"nonuniform", {{"levels", 3}, {"half_range", "false"}}, 3, false},
      {"nonuniform", {{"bits", 2}, {"closed_form", true}}, 4, false},
      {"xnor", {}, 2, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.plugin + " " + qsdk::Value(c.options).to_string());
    auto q = make(c.plugin, T::activation, c.options);
    {
      // Unequal slopes per group, so the thresholds are really non-uniform.
      torch::NoGradGuard no_grad;
      for (auto& p : q->named_parameters())
        if (p.key().rfind("alpha", 0) == 0) p.value().uniform_(1.0, 4.0);
    }
    train_once(q, torch::rand({2, 8, 6, 6}) * 3);
    qsdk::LevelActivationExport e;
    ASSERT_NO_THROW(e = level_form(q).export_activation_levels());
    EXPECT_EQ(e.levels.size(-1), c.levels);
    EXPECT_EQ(e.thresholds.size(-1), c.levels - 1);
    EXPECT_EQ(e.upper_at_ties, c.upper_at_ties);
    const torch::Tensor x = with_thresholds(torch::randn({2, 8, 6, 6}) * 2, e);
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = q->forward(x);
    }
    const torch::Tensor f = apply_levels(e, x);
    EXPECT_TRUE(f.equal(y)) << "max |diff| " << (f - y).abs().max().item<double>() << " at "
                            << x.reshape({-1})[(f - y).abs().reshape({-1}).argmax()].item<float>();
  }
}

TEST(QuantExport, LevelFormsThatDoNotExistAreRefused) {
  auto lq = make("lqnet", T::activation, {{"bits", 2}, {"adaptive", "mean"}});
  train_once(lq, torch::rand({2, 8, 6, 6}));
  expect_refused([&] { level_form(lq).export_activation_levels(); },
                 {"layer1.0.conv1", "lqnet activation quantizer has no exact ONNX form", "adaptive = mean"});
  expect_refused([&] { level_form(make("xnor", T::activation, {{"custom", "channel"}})).export_activation_levels(); },
                 {"xnor activation quantizer has no exact ONNX form", "custom = channel"});
  // Affine quantizers of these plugins say so, and their level calls refuse.
  auto nw = make("nonuniform", T::weight, {{"levels", 3}});
  EXPECT_FALSE(level_form(nw).uses_levels());
  EXPECT_FALSE(level_form(make("xnor", T::weight, {})).uses_levels());
  expect_refused([&] { level_form(nw).export_weight_levels(torch::randn({8, 4, 3, 3})); }, {"affine form"});
}

TEST(QuantExport, NonUniformTernaryWeightsAreCodesTimesOne) {
  torch::manual_seed(9);
  auto q = make("nonuniform", T::weight, {{"levels", 3}, {"gamma", true}});
  {
    torch::NoGradGuard no_grad;
    for (auto& p : q->named_parameters())
      if (p.key().rfind("alpha", 0) == 0 || p.key() == "gamma") p.value().uniform_(1.0, 4.0);
  }
  const torch::Tensor w = torch::randn({8, 4, 3, 3}) * 0.3;
  qsdk::WeightExport e;
  ASSERT_NO_THROW(e = exportable(q).export_weight(w));
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = q->forward(w);
  }
  EXPECT_EQ(values(e.codes), (std::set<int64_t>{-1, 0, 1}));
  ASSERT_EQ(e.scale.numel(), 8);  // gamma per output channel
  EXPECT_TRUE((e.codes.to(torch::kFloat) * e.scale.reshape({-1, 1, 1, 1})).equal(y));
}

}  // namespace
