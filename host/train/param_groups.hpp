// param_groups.hpp - the reference's per-parameter groups: weight decay rules
// (decay_small, custom decay) and custom learning rates (docs/training.md#parameter-groups-and-weight-decay).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <vector>

namespace qhost {

/// The options that decide each parameter's lr and weight decay.
struct ParamGroupRules {
  double lr = 0.1;                             ///< the global lr (scheduler base)
  double weight_decay = 1e-4;                  ///< the global weight decay (`--wd`)
  bool decay_small = false;                    ///< decay "small" tensors too
  std::vector<std::string> custom_lr_list;     ///< name substrings that get custom_lr
  double custom_lr = 1e-5;                     ///< lr of those parameters
  std::vector<std::string> custom_decay_list;  ///< name substrings that get custom_decay
  double custom_decay = 0.02;                  ///< weight decay of those parameters
};

/// One parameter's group (the reference gives every parameter its own group).
struct ParamGroup {
  std::string name;          ///< dotted parameter name
  torch::Tensor param;       ///< the parameter
  double lr = 0.0;           ///< initial lr of the group
  double weight_decay = 0.0; ///< weight decay of the group
  bool lr_constant = false;  ///< never rescheduled (latent weights under `quant_weight` custom lr)
  bool small = false;        ///< counted as "small" (1-D, or 4-D with shape[1] == 1)
};

/// True for the tensors the reference exempts from weight decay unless
/// decay_small: 1-D (or 0-D), or 4-D with shape[1] == 1.
bool is_small_tensor(const torch::Tensor& t);

/// One group per parameter with requires_grad, in registration order.
std::vector<ParamGroup> make_param_groups(const torch::nn::Module& module, const ParamGroupRules& rules);

/// One line per distinct (lr, wd, constant) combination with a count, for the log.
std::string describe_param_groups(const std::vector<ParamGroup>& groups);

}  // namespace qhost
