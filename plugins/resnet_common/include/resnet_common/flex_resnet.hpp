// The flexible ResNet (docs/models.md#stem-stages-and-head): stem, stages of flexible blocks, head.
#pragma once

#include "resnet_common/flex_blocks.hpp"
#include "resnet_common/flex_config.hpp"

#include <qsdk/model.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>

#include <memory>
#include <string>
#include <vector>

namespace qplug_resnet_common {

/// The flexible ResNet as a qsdk model. Parameter names follow docs/models.md#parameter-names:
/// `conv1.weight`, `bn1.0.*`, `layerX.Y.conv1.K.weight`, `layerX.Y.skip.P.*`,
/// `layerX.0.shrink.0.conv.weight`, `bn2.0.*`, `fc.*`, `scales.K`, `fixup_*`.
class FlexibleResNetImpl : public qsdk::ModelImpl {
 public:
  /// Validates `cfg` (qsdk::Error(config) on a bad combination) and builds the
  /// network for `ctx.num_classes` classes and `ctx.input_shape` inputs.
  FlexibleResNetImpl(const FlexibleConfig& cfg, const qsdk::ModelContext& ctx);
  /// Logits [N, num_classes].
  torch::Tensor forward(const torch::Tensor& x) override;
  /// The resolved stem kind (imagenet, cifar, tresnet or tresnet_maxpool; never automatic).
  Stem stem_kind() const { return stem_; }

 private:
  void initialise(const std::vector<InitTargets>& targets, bool bottleneck, size_t stages);
  FlexibleConfig cfg_;
  Stem stem_ = Stem::imagenet;
  torch::nn::AnyModule conv1_;
  torch::nn::Sequential bn1_{nullptr};  // null with pre_bn / fixup
  torch::nn::AnyModule stem_act_;  // Fixup: activation right after the stem conv
  bool maxpool_ = false;
  std::vector<torch::nn::Sequential> stages_;
  torch::nn::Sequential bn2_{nullptr};  // null unless pre_bn
  std::shared_ptr<qsdk::LinearLayerImpl> fc_;
  torch::Tensor fixup_bias1_, fixup_bias2_;
};

}  // namespace qplug_resnet_common
