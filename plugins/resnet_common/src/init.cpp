#include <torch/torch.h>

#include "resnet_common/init.hpp"

#include <qsdk/model.hpp>

#include <cmath>

namespace qplug_resnet_common {

void kaiming_fan_out_(torch::Tensor& weight, double extra_scale) {
  torch::NoGradGuard no_grad;
  const double fan_out = static_cast<double>(weight.size(0) * (weight.numel() / (weight.size(0) * weight.size(1))));
  weight.normal_(0.0, std::sqrt(2.0 / fan_out) * extra_scale);
}

void init_convs(torch::nn::Module& model) {
  for (const auto& m : model.modules(/*include_self=*/false))
    if (auto* conv = dynamic_cast<qsdk::Conv2dLayerImpl*>(m.get())) kaiming_fan_out_(conv->weight());
}

void zero_norm_weight(torch::nn::Module& norm) {
  torch::NoGradGuard no_grad;
  for (auto& p : norm.named_parameters(/*recurse=*/false))
    if (p.key() == "weight") p.value().zero_();
}

}  // namespace qplug_resnet_common
