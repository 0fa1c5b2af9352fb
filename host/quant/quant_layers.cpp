#include <torch/torch.h>

#include "quant/quant_layers.hpp"

#include "platform/device.hpp"

#include <qsdk/error.hpp>

#include <array>
#include <cmath>

namespace qhost {
namespace {

// LibTorch 1.x keeps option variants in c10::variant, 2.x in std::variant: these
// never-called declarations make unqualified get_if<T> / holds_alternative<T>
// parse as template calls so argument-dependent lookup picks the right one.
struct NoVariant {};
template <class T>
void get_if(NoVariant*);
template <class T>
void holds_alternative(NoVariant*);

// (mixed precision) A quantizer sees and computes fp32 even inside autocast:
// its levels, clips and counters are defined in fp32 and a bf16/fp16 copy of
// its input would move values across rounding boundaries. Only the convolution
// or matrix product that consumes its output runs in the reduced precision.
torch::Tensor quantize(qsdk::QuantizerImpl& q, const torch::Tensor& x) {
  return run_in_fp32(x, [&q](const torch::Tensor& t) { return q.forward(t); });
}

int64_t square_padding(const std::string& path, const torch::nn::Conv2dOptions& o) {
  const auto* pad = get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad || (*pad)->at(0) != (*pad)->at(1))
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path,
                      "quantized convolutions need a square integer padding", "use padding(p) with one integer");
  if (!holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "only zero padding is supported");
  return (*pad)->at(0);
}

// torch::nn::Conv2d / Linear's default: Kaiming uniform with a = sqrt(5) and a
// bias uniform in +-1/sqrt(fan_in).
void default_init(torch::Tensor& weight, torch::Tensor& bias, int64_t fan_in) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    bias.uniform_(-bound, bound);
  }
}

torch::Tensor apply_transforms(const torch::Tensor& w, const std::shared_ptr<const WeightTransforms>& t,
                               const std::string& path) {
  torch::Tensor out = w;
  if (t)
    for (const auto& f : *t) out = f(out, path);
  return out;
}

thread_local ExportHooks* g_export_hooks = nullptr;

// A weight quantizer's output, or under ExportHooks its integer form.
torch::Tensor quantize_weight(qsdk::QuantizerImpl& q, const std::string& path,
                              const std::function<torch::Tensor()>& weight, torch::IntArrayRef shape) {
  if (g_export_hooks) return g_export_hooks->weight(path, q, weight, shape);
  // The weight (an fp32 parameter) and its transforms, quantized in fp32 (quantize()).
  torch::Tensor y = run_in_fp32(torch::Tensor(), [&](const torch::Tensor&) { return q.forward(weight()); });
  return y.sizes() == shape ? y : y.view(shape);
}

// An activation/output quantizer's output, or under ExportHooks its integer form.
torch::Tensor quantize_value(qsdk::QuantizerImpl& q, const std::string& path, qsdk::QuantTarget target,
                             const torch::Tensor& x, int64_t axis) {
  return g_export_hooks ? g_export_hooks->activation(path, target, q, x, axis) : quantize(q, x);
}

void register_quantizers(torch::nn::Module& m, const LayerQuantizers& q) {
  if (q.weight) m.register_module("quant_weight", q.weight);
  if (q.activation) m.register_module("quant_activation", q.activation);
  if (q.output) m.register_module("quant_output", q.output);
}

// (schedule) Swaps one attached quantizer; the submodule keeps its name and
// position, so parameter names and order are unchanged.
void replace_quantizer_of(torch::nn::Module& m, const std::string& path, LayerQuantizers& q,
                          qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> quantizer) {
  auto& slot = target == qsdk::QuantTarget::weight       ? q.weight
               : target == qsdk::QuantTarget::activation ? q.activation
                                                         : q.output;
  if (!slot || !quantizer)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path,
                      std::string("cannot replace the ") + qsdk::to_string(target) + " quantizer: " +
                          (slot ? "no new quantizer given" : "the layer has none"));
  m.replace_module(std::string("quant_") + qsdk::to_string(target), quantizer);
  slot = std::move(quantizer);
}

}  // namespace

ExportHooksScope::ExportHooksScope(ExportHooks* hooks) : previous_(g_export_hooks) { g_export_hooks = hooks; }
ExportHooksScope::~ExportHooksScope() { g_export_hooks = previous_; }

QuantConv2dImpl::QuantConv2dImpl(std::string module_path, const torch::nn::Conv2dOptions& options,
                                 LayerQuantizers quantizers, bool padding_after_quant,
                                 std::shared_ptr<const WeightTransforms> transforms)
    : path_(std::move(module_path)),
      options_(options),
      quantizers_(std::move(quantizers)),
      padding_after_quant_(padding_after_quant),
      transforms_(std::move(transforms)) {
  padding_ = square_padding(path_, options_);
  const int64_t in = options_.in_channels(), out = options_.out_channels(), groups = options_.groups();
  if (in % groups != 0 || out % groups != 0)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path_, "channels are not divisible by groups");
  std::vector<int64_t> shape{out, in / groups};
  for (int64_t k : *options_.kernel_size()) shape.push_back(k);
  weight_ = register_parameter("weight", torch::empty(shape));
  if (options_.bias()) bias_ = register_parameter("bias", torch::empty({out}));
  default_init(weight_, bias_, weight_.numel() / out);
  register_quantizers(*this, quantizers_);
}

torch::Tensor QuantConv2dImpl::forward(const torch::Tensor& input) {
  const auto& o = options_;
  auto conv = [&](const torch::Tensor& x, const torch::Tensor& w, int64_t padding) {
    return torch::conv2d(x, w, bias_, torch::IntArrayRef(*o.stride()),
                         torch::IntArrayRef(std::array<int64_t, 2>{padding, padding}),
                         torch::IntArrayRef(*o.dilation()), o.groups());
  };
  if (!quantizers_.any()) return conv(input, weight_, padding_);
  torch::Tensor w = weight_;
  if (quantizers_.weight)
    w = quantize_weight(*quantizers_.weight, path_, [&] { return apply_transforms(weight_, transforms_, path_); },
                        weight_.sizes());
  torch::Tensor x = input;
  int64_t conv_padding = padding_;
  if (quantizers_.activation) {
    // Padded zeros are quantized like real zeros (the reference's default)
    // unless the layer pads after quantizing. When the quantizer declares that
    // zero padding commutes with it (it maps 0 to 0 with no gradient there),
    // both orders give the same result and the convolution pads by itself:
    // that saves the padded copy, and a pre-padded input makes the convolution
    // (its backward above all) markedly slower.
    // Under ExportHooks an affine quantizer is a QuantizeLinear/DequantizeLinear
    // pair, which maps 0 to 0 (its zero point lies in its range), so the
    // convolution pads; a threshold form pads first, as evaluation does.
    bool pad_first = !padding_after_quant_ && padding_ > 0 &&
                     (!g_export_hooks || g_export_hooks->pads_first(*quantizers_.activation));
    if (pad_first) {
      const auto* traits = dynamic_cast<const qsdk::ZeroPaddingAware*>(quantizers_.activation.get());
      pad_first = !(traits && traits->commutes_with_zero_padding());
    }
    if (pad_first) {
      x = torch::constant_pad_nd(x, {padding_, padding_, padding_, padding_}, 0.0);
      conv_padding = 0;
    }
    x = quantize_value(*quantizers_.activation, path_, qsdk::QuantTarget::activation, x, 1);
  }
  torch::Tensor y = conv(x, w, conv_padding);
  if (quantizers_.output) y = quantize_value(*quantizers_.output, path_, qsdk::QuantTarget::output, y, 1);
  return y;
}

QuantLinearImpl::QuantLinearImpl(std::string module_path, const torch::nn::LinearOptions& options,
                                 LayerQuantizers quantizers, std::shared_ptr<const WeightTransforms> transforms)
    : path_(std::move(module_path)), quantizers_(std::move(quantizers)), transforms_(std::move(transforms)) {
  weight_ = register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
  if (options.bias()) bias_ = register_parameter("bias", torch::empty({options.out_features()}));
  default_init(weight_, bias_, options.in_features());
  register_quantizers(*this, quantizers_);
}

torch::Tensor QuantLinearImpl::forward(const torch::Tensor& input) {
  torch::Tensor w = weight_;
  if (quantizers_.weight) {
    const auto out = w.size(0), in = w.size(1);
    w = quantize_weight(
        *quantizers_.weight, path_,
        [&] { return apply_transforms(weight_, transforms_, path_).view({1, 1, out, in}); }, {out, in});
  }
  // Under ExportHooks the feature axis is quantized in place: the [N, C, 1, 1]
  // views would put the traced batch size into the graph as a constant.
  torch::Tensor x = input;
  if (quantizers_.activation) {
    const auto sizes = x.sizes().vec();
    x = g_export_hooks ? quantize_value(*quantizers_.activation, path_, qsdk::QuantTarget::activation, x,
                                        x.dim() - 1)
                       : quantize(*quantizers_.activation, x.reshape({-1, sizes.back(), 1, 1})).reshape(sizes);
  }
  torch::Tensor y = torch::linear(x, w, bias_);
  if (quantizers_.output) {
    const auto sizes = y.sizes().vec();
    y = g_export_hooks ? quantize_value(*quantizers_.output, path_, qsdk::QuantTarget::output, y, y.dim() - 1)
                       : quantize(*quantizers_.output, y.reshape({-1, sizes.back(), 1, 1})).reshape(sizes);
  }
  return y;
}

void QuantConv2dImpl::replace_quantizer(qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> quantizer) {
  replace_quantizer_of(*this, path_, quantizers_, target, std::move(quantizer));
}

void QuantLinearImpl::replace_quantizer(qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> quantizer) {
  replace_quantizer_of(*this, path_, quantizers_, target, std::move(quantizer));
}

}  // namespace qhost
