// The torchvision-structured ResNet (docs/models.md#torchvision-resnet): BasicBlock / Bottleneck V1.5.
#pragma once

#include "resnet_common/norm_act.hpp"

#include <qsdk/model.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qplug_resnet_common {

/// Options of the vanilla ResNet.
struct VanillaConfig {
  int64_t depth = 18;              ///< 18, 34 (BasicBlock), 50, 101 (Bottleneck)
  Norm norm = Norm::batchnorm;     ///< normalisation kind (docs/models.md#normalisation-and-activation)
  int64_t norm_groups = 0;         ///< groups of group_norm
  Act activation = Act::relu;      ///< activation kind (docs/models.md#normalisation-and-activation)
  bool caffe_pooling = false;      ///< stem max-pool 3/2 without padding, ceil mode
  bool zero_init_residual = false; ///< zero the last BN of each residual branch (off in the reference)
};

/// torchvision's ResNet: parameter names are torchvision's (`conv1`, `bn1`,
/// `layer2.0.downsample.0`, `fc`, ...), so torchvision checkpoints load as is.
/// Unlike the reference (which always builds 1000 classes, docs/methods.md#reference-bugs-and-what-qtool-does item 17)
/// the classifier has ctx.num_classes outputs.
class VanillaResNetImpl : public qsdk::ModelImpl {
 public:
  /// Builds the network; throws qsdk::Error(config) on an unknown depth.
  VanillaResNetImpl(const VanillaConfig& cfg, const qsdk::ModelContext& ctx);
  /// Logits [N, num_classes].
  torch::Tensor forward(const torch::Tensor& x) override;

 private:
  VanillaConfig cfg_;
  std::shared_ptr<qsdk::Conv2dLayerImpl> conv1_;
  torch::nn::AnyModule bn1_, relu_;
  std::vector<torch::nn::Sequential> stages_;
  std::shared_ptr<qsdk::LinearLayerImpl> fc_;
};

}  // namespace qplug_resnet_common
