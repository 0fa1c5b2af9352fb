// Flexible BasicBlock (docs/models.md#flexible-basicblock) and Bottleneck (docs/models.md#flexible-bottleneck).
#pragma once

#include "resnet_common/flex_config.hpp"
#include "resnet_common/ops.hpp"

#include <qsdk/model.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/parameterlist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qplug_resnet_common {

/// Where a block sits and what it maps.
struct BlockSpec {
  std::string path;      ///< module path, e.g. "layer2.0"
  int64_t inplanes = 0;  ///< input channels
  int64_t planes = 0;    ///< block width (output = planes, or 4*planes for a Bottleneck)
  int64_t stride = 1;    ///< stride of the block
  int64_t resolution = 0;  ///< input height (for the reference's extra padding rules)
};

/// Layers whose initialisation differs from the generic Kaiming init.
struct InitTargets {
  /// Fixup: conv groups by position in the residual branch (first, middle, last).
  std::vector<std::shared_ptr<qsdk::Conv2dLayerImpl>> fixup_first, fixup_middle, fixup_last;
  /// `zir`: the last normalisation of each residual branch.
  std::vector<std::shared_ptr<torch::nn::Module>> zir_norms;
};

/// The shortcut branch of a block (docs/models.md#flexible-basicblock item 5): the `skip` Sequential,
/// plus channel duplication for DCHR.
struct Shortcut {
  torch::nn::Sequential seq{nullptr};  ///< null when the block has an identity shortcut
  int64_t copies = 1;                  ///< DCHR: channel copies after `seq`
  /// Applies the shortcut (identity when `seq` is null).
  torch::Tensor operator()(const torch::Tensor& x);
};

/// Flexible BasicBlock: per-branch (`base`) ModuleLists conv1/conv2/bn1/bn2/
/// relu1/relu2, optional `skip`, `shrink`, `fix_bn`, `fix_relu`, `scales`, Fixup scalars.
class FlexBasicBlockImpl : public torch::nn::Module {
 public:
  /// Builds the block; convs are made through `layers` under `spec.path`.
  FlexBasicBlockImpl(const FlexibleConfig& cfg, const BlockSpec& spec, qsdk::LayerFactory& layers);
  /// The block's output.
  torch::Tensor forward(const torch::Tensor& x);
  /// Layers with special initialisation.
  const InitTargets& init_targets() const { return targets_; }

 private:
  torch::Tensor unit(const torch::Tensor& x, CallableList& conv, CallableList& bn, CallableList& act,
                     size_t k, const torch::Tensor* skip);
  FlexibleConfig cfg_;
  Order order_;
  bool only_shrink_ = false;
  bool f0x0_ = false;
  torch::nn::Sequential shrink_{nullptr};
  Shortcut skip_;
  std::optional<CallableList> conv1_, conv2_, bn1_, bn2_, relu1_, relu2_;
  torch::nn::AnyModule fix_bn_, fix_relu_;
  torch::nn::ParameterList scales_{nullptr};
  torch::Tensor fixup_scale_, b1a_, b1b_, b2a_, b2b_;
  InitTargets targets_;
};
TORCH_MODULE(FlexBasicBlock);

/// Flexible Bottleneck (expansion 4): conv1 1x1, conv2 3x3 (stride, Prone-able),
/// conv3 1x1, in ModuleLists like the BasicBlock; block-level residual only.
class FlexBottleneckImpl : public torch::nn::Module {
 public:
  /// Builds the block; output channels are 4 * spec.planes.
  FlexBottleneckImpl(const FlexibleConfig& cfg, const BlockSpec& spec, qsdk::LayerFactory& layers);
  /// The block's output.
  torch::Tensor forward(const torch::Tensor& x);
  /// Layers with special initialisation.
  const InitTargets& init_targets() const { return targets_; }

 private:
  torch::Tensor unit(const torch::Tensor& x, CallableList& conv, CallableList& bn, CallableList& act);
  FlexibleConfig cfg_;
  Order order_;
  Shortcut skip_;
  std::optional<CallableList> conv1_, conv2_, conv3_, bn1_, bn2_, bn3_, relu1_, relu2_, relu3_;
  torch::nn::AnyModule fix_bn_, fix_relu_;
  torch::Tensor fixup_scale_, b1a_, b1b_, b2a_, b2b_, b3a_, b3b_;
  InitTargets targets_;
};
TORCH_MODULE(FlexBottleneck);

/// Builds a block's shortcut (docs/models.md#flexible-basicblock item 5) under `<path>.skip`, adding its
/// conv (if any) to `shortcut_convs`. `outplanes` is the block's output width.
Shortcut make_shortcut(const FlexibleConfig& cfg, Order order, bool bottleneck, int64_t inplanes,
                       int64_t outplanes, int64_t stride, int64_t extra_padding, const std::string& path,
                       qsdk::LayerFactory& layers, torch::nn::Module& owner);

/// Normalisation of the flexible blocks: identity under Fixup.
torch::nn::AnyModule block_norm(const FlexibleConfig& cfg, int64_t channels);

/// The reference's "extra padding" of a strided block: 1 at resolution 14 with
/// `force_padding`, else 0 (see flex_basic_block.cpp for why).
int64_t extra_padding(const FlexibleConfig& cfg, int64_t stride, int64_t resolution);

}  // namespace qplug_resnet_common
