// Normalisation and activation factories of the ResNets (docs/models.md#normalisation-and-activation).
#pragma once

#include <qsdk/schema.hpp>

#include <torch/nn/modules/container/any.h>

#include <cstdint>

namespace qplug_resnet_common {

/// `norm`: the normalisation layer of the ResNets (TOML spelling = enumerator name).
enum class Norm {
  batchnorm,      ///< BatchNorm2d, eps 1e-5, momentum 0.1, affine (the default)
  static_bn,      ///< fixed statistics mean 0 / var 1-eps with a trainable affine
  freeze_bn,      ///< BatchNorm with every value frozen, always in inference mode
  reverse_bn,     ///< trainable affine first, then a non-affine BatchNorm
  instance_norm,  ///< InstanceNorm2d without affine
  group_norm,     ///< GroupNorm with `norm_groups` groups
};
/// `activation`: the activation of the ResNets (TOML spelling = enumerator name).
enum class Act {
  relu,        ///< ReLU (the default)
  prelu,       ///< PReLU, one shared slope, init 0.25
  none,        ///< identity (the reference's NReLU)
  relu6,       ///< ReLU6
  leaky_relu,  ///< LeakyReLU, slope 0.01
};

/// The TOML spellings of `norm`, in the order `qhost describe` shows them.
const qsdk::EnumNames<Norm>& norm_names();
/// The TOML spellings of `activation`.
const qsdk::EnumNames<Act>& act_names();

/// A normalisation of kind `kind` over `channels` channels (see Norm);
/// group_norm needs `groups` > 0 dividing `channels` (else qsdk::Error(config)).
torch::nn::AnyModule make_norm(Norm kind, int64_t channels, int64_t groups);

/// An activation of kind `kind` (see Act).
torch::nn::AnyModule make_act(Act kind);

/// A parameter-free identity as an AnyModule (placeholders keep list indices).
torch::nn::AnyModule make_identity();

}  // namespace qplug_resnet_common
