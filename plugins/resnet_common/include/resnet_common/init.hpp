// Initialisation shared by both ResNets (docs/models.md#initialisation, docs/models.md#fixup).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

namespace qplug_resnet_common {

/// Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (C_out * k * k)).
void kaiming_fan_out_(torch::Tensor& weight, double extra_scale = 1.0);

/// Generic init of every conv made by the layer factory inside `model`
/// (Kaiming fan_out). Norm layers keep weight 1 / bias 0, linears PyTorch's default.
void init_convs(torch::nn::Module& model);

/// Sets the `weight` parameter of a norm module to zero (zir); no-op when it has none.
void zero_norm_weight(torch::nn::Module& norm);

}  // namespace qplug_resnet_common
