// qsdk::Exportable of the bundled quantizers (docs/methods.md#export-to-onnx):
// the integer form each one reports reproduces its own eval-mode forward,
// codes * scale for weights and the QuantizeLinear/DequantizeLinear formula for
// activations, with the codes each method allows; the forms that do not exist
// are refused with the method and the reason.
#include "../golden/test_plugins.hpp"

#include <qsdk/error.hpp>
#include <qsdk/exportable.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

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
  // LQ-Net and the non-uniform quantizer have learned, unequally spaced levels.
  EXPECT_EQ(dynamic_cast<const qsdk::Exportable*>(make("lqnet", T::weight, {{"bits", 2}}).get()), nullptr);
  EXPECT_EQ(dynamic_cast<const qsdk::Exportable*>(make("nonuniform", T::weight, {{"levels", 3}}).get()), nullptr);
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

}  // namespace
