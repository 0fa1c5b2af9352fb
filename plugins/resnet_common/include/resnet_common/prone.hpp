// Prone unit: Point-wise and Reshape Only replacement of a 3x3 conv (docs/models.md#prone-unit).
#pragma once

#include <qsdk/model.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>

namespace qplug_resnet_common {

/// Replaces a 3x3 conv (in -> out, stride s in {1,2}): with r = 2s, zero-pad to
/// a multiple of r, space-to-depth by r, 1x1 conv (in*r*r -> 4*out, submodule
/// `conv`, made through the layer factory with the given role), optional
/// normalisation `bn` (bn_before_restore), depth-to-space by 2. Output
/// [B, out, H/s, W/s].
class ProneImpl : public torch::nn::Module {
 public:
  /// `norm` is used only when `bn_before_restore`; pass an empty AnyModule otherwise.
  ProneImpl(qsdk::LayerFactory& layers, const std::string& path, qsdk::LayerRole role, int64_t in,
            int64_t out, int64_t stride, torch::nn::AnyModule norm);
  /// The unit's output.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t ratio_;
  std::shared_ptr<qsdk::Conv2dLayerImpl> conv_;
  torch::nn::AnyModule norm_;
};
TORCH_MODULE(Prone);

}  // namespace qplug_resnet_common
