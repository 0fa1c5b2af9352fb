// Normalisation and activation factories of the ResNets (docs/models.md#normalisation-and-activation).
#pragma once

#include <torch/nn/modules/container/any.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qplug_resnet_common {

/// Names accepted by make_norm(), in the order `qhost describe` shows them.
const std::vector<std::string>& norm_kinds();
/// Names accepted by make_act().
const std::vector<std::string>& act_kinds();

/// A normalisation over `channels` channels:
/// "batchnorm" (BatchNorm2d, eps 1e-5, momentum 0.1, affine; the default),
/// "static_bn" (fixed statistics mean 0 / var 1-eps with a trainable affine),
/// "freeze_bn" (BatchNorm with every value frozen, always in inference mode),
/// "reverse_bn" (trainable affine first, then a non-affine BatchNorm),
/// "instance_norm" (InstanceNorm2d without affine),
/// "group_norm" (GroupNorm with `groups` groups; groups must divide channels).
torch::nn::AnyModule make_norm(const std::string& kind, int64_t channels, int64_t groups);

/// An activation: "relu" (default), "prelu" (one shared slope, init 0.25),
/// "none" (identity, the reference's NReLU), "relu6", "leaky_relu" (slope 0.01).
torch::nn::AnyModule make_act(const std::string& kind);

/// A parameter-free identity as an AnyModule (placeholders keep list indices).
torch::nn::AnyModule make_identity();

}  // namespace qplug_resnet_common
