// optimizer.hpp - SGD / Adam over the reference's per-parameter groups, with
// the lr set from the scheduler every iteration and state as named tensors.
#pragma once

#include "checkpoint/checkpoint.hpp"
#include "train/param_groups.hpp"

#include <qsdk/value.hpp>

#include <memory>
#include <string>
#include <vector>

namespace torch {
namespace optim {
class Optimizer;
}
}  // namespace torch

namespace qhost {

/// The `[optimizer]` section (docs/CONTRACTS.md) as a struct.
struct OptimizerSettings {
  std::string type = "sgd";  ///< "sgd" or "adam"
  double momentum = 0.9;     ///< SGD momentum
  bool nesterov = false;     ///< SGD Nesterov momentum
  double beta1 = 0.9;        ///< Adam beta1
  double beta2 = 0.999;      ///< Adam beta2
  double eps = 1e-8;         ///< Adam epsilon
  ParamGroupRules rules;     ///< lr, weight decay and custom groups

  /// Reads a validated `[optimizer]` table (missing keys keep the defaults above).
  static OptimizerSettings from_table(const qsdk::Table& table);
};

/// SGD (PyTorch semantics, dampening 0) or Adam (L2 weight decay) with one
/// group per parameter.
class Optimizer {
 public:
  /// Builds the groups of `module` and the torch optimizer over them.
  Optimizer(const torch::nn::Module& module, const OptimizerSettings& settings);
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Zeroes the gradients of every parameter.
  void zero_grad();
  /// One update.
  void step();
  /// Sets the lr from the scheduler's value for the global lr: each group gets
  /// `scheduled * group_lr / base_lr`, except lr_constant groups.
  void set_lr(double scheduled);
  /// The lr of the first non-constant group (what the log shows).
  double current_lr() const;
  /// "sgd" or "adam".
  const std::string& type() const { return settings_.type; }
  /// True when steps leave state (Adam moments, SGD momentum > 0) that a checkpoint must carry.
  bool keeps_state() const { return settings_.type != "sgd" || settings_.momentum > 0.0; }
  /// (sweep) A `[[schedule]]` change from now on: `name` is "lr", "weight_decay"
  /// or "momentum" (SGD); groups that took the global value follow it, custom
  /// groups keep theirs. Returns the old global value. Defined in policy_schedule.cpp.
  double update_hyper(const std::string& name, double value);
  /// (schedule) Rebuilds the groups over the current parameters of `module`
  /// (after quantizers were replaced) with the current settings; momentum /
  /// Adam state is carried over by parameter name where the shape matches.
  /// Returns the names whose state was dropped. Defined in policy_schedule.cpp.
  std::vector<std::string> rebind(const torch::nn::Module& module);
  /// The groups (names, initial lr and wd).
  const std::vector<ParamGroup>& groups() const { return groups_; }

  /// Momentum buffers / Adam moments and step counts as `<param name>/<state>`.
  NamedTensors state() const;
  /// Restores state() output; throws qsdk::Error(checkpoint) naming `origin`
  /// when a parameter is unknown or a shape differs.
  void load_state(const NamedTensors& state, const std::string& origin);

 private:
  OptimizerSettings settings_;
  std::vector<ParamGroup> groups_;
  std::unique_ptr<torch::optim::Optimizer> impl_;
};

}  // namespace qhost
