#include <torch/torch.h>

#include "quant_layers.hpp"

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

void register_quantizers(torch::nn::Module& m, const LayerQuantizers& q) {
  if (q.weight) m.register_module("quant_weight", q.weight);
  if (q.activation) m.register_module("quant_activation", q.activation);
  if (q.output) m.register_module("quant_output", q.output);
}

}  // namespace

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
  if (!quantizers_.any())
    return torch::conv2d(input, weight_, bias_, torch::IntArrayRef(*o.stride()),
                         torch::IntArrayRef(std::array<int64_t, 2>{padding_, padding_}),
                         torch::IntArrayRef(*o.dilation()), o.groups());
  torch::Tensor w = weight_;
  if (quantizers_.weight) w = quantizers_.weight->forward(apply_transforms(w, transforms_, path_));
  auto pad = [this](const torch::Tensor& t) {
    return padding_ > 0 ? torch::constant_pad_nd(t, {padding_, padding_, padding_, padding_}, 0.0) : t;
  };
  torch::Tensor x = input;
  if (padding_after_quant_) {
    if (quantizers_.activation) x = quantizers_.activation->forward(x);
    x = pad(x);
  } else {
    // Padded zeros are quantized like real zeros (the reference's default).
    x = pad(x);
    if (quantizers_.activation) x = quantizers_.activation->forward(x);
  }
  torch::Tensor y = torch::conv2d(x, w, bias_, torch::IntArrayRef(*o.stride()),
                                  torch::IntArrayRef(std::array<int64_t, 2>{0, 0}),
                                  torch::IntArrayRef(*o.dilation()), o.groups());
  if (quantizers_.output) y = quantizers_.output->forward(y);
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
    w = quantizers_.weight->forward(apply_transforms(w, transforms_, path_).view({1, 1, out, in})).view({out, in});
  }
  torch::Tensor x = input;
  if (quantizers_.activation) {
    const auto sizes = x.sizes().vec();
    x = quantizers_.activation->forward(x.reshape({-1, sizes.back(), 1, 1})).reshape(sizes);
  }
  torch::Tensor y = torch::linear(x, w, bias_);
  if (quantizers_.output) {
    const auto sizes = y.sizes().vec();
    y = quantizers_.output->forward(y.reshape({-1, sizes.back(), 1, 1})).reshape(sizes);
  }
  return y;
}

}  // namespace qhost
