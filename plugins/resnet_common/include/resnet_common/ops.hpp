// Small tensor operations and module helpers shared by the ResNet blocks.
#pragma once

#include <qsdk/model.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qplug_resnet_common {

/// Space-to-depth by `r` (docs/models.md#space-to-depth): [B,C,H,W] -> [B, C*r*r, H/r, W/r], output
/// channel c*r*r + i*r + j holds input pixel (h*r+i, w*r+j) (= pixel_unshuffle).
/// Throws qsdk::Error(runtime) when H or W is not divisible by r.
torch::Tensor space_to_depth(const torch::Tensor& x, int64_t r);

/// Depth-to-space by `r`, the inverse of space_to_depth (= pixel_shuffle).
torch::Tensor depth_to_space(const torch::Tensor& x, int64_t r);

/// Joins a module path: join_path("layer1.0", "conv1") == "layer1.0.conv1".
std::string join_path(const std::string& prefix, const std::string& name);

/// Conv options with the ResNets' conventions: square kernel, no bias.
torch::nn::Conv2dOptions conv_options(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                      int64_t padding);

/// A list of modules that is both registered (a torch ModuleList, so names are
/// `<list>.<index>.*` as in the reference's per-branch ModuleLists) and callable.
class CallableList {
 public:
  /// Registers an empty list called `name` in `owner`.
  CallableList(torch::nn::Module& owner, const std::string& name);
  /// Appends a module (index = current size).
  void push_back(torch::nn::AnyModule module);
  /// Calls element `i` on `x`.
  torch::Tensor operator()(size_t i, const torch::Tensor& x);
  /// Number of elements.
  size_t size() const { return modules_.size(); }
  /// Element `i` as a module pointer.
  std::shared_ptr<torch::nn::Module> ptr(size_t i) const { return modules_[i].ptr(); }

 private:
  torch::nn::ModuleList list_;
  std::vector<torch::nn::AnyModule> modules_;
};

/// Space-to-depth by `stride` followed by a conv (the ldn "shrink" conv and the
/// TResNet stem). The conv is the submodule `conv`, made through the layer factory.
class SpaceToDepthConvImpl : public torch::nn::Module {
 public:
  /// `conv` is made with path `<path>.conv` and `role`.
  SpaceToDepthConvImpl(qsdk::LayerFactory& layers, const std::string& path, qsdk::LayerRole role,
                       int64_t stride, const torch::nn::Conv2dOptions& conv);
  /// conv(space_to_depth(x)).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t stride_;
  std::shared_ptr<qsdk::Conv2dLayerImpl> conv_;
};
TORCH_MODULE(SpaceToDepthConv);

}  // namespace qplug_resnet_common
