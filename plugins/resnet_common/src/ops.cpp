#include <torch/torch.h>

#include "resnet_common/ops.hpp"

#include <qsdk/error.hpp>

namespace qplug_resnet_common {

torch::Tensor space_to_depth(const torch::Tensor& x, int64_t r) {
  if (r == 1) return x;
  if (x.dim() != 4 || x.size(2) % r != 0 || x.size(3) % r != 0)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "space_to_depth",
                      "input " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                          " is not divisible by " + std::to_string(r),
                      "use an input resolution divisible by the network's total stride");
  return torch::pixel_unshuffle(x, r);
}

torch::Tensor depth_to_space(const torch::Tensor& x, int64_t r) {
  if (r == 1) return x;
  return torch::pixel_shuffle(x, r);
}

std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

torch::nn::Conv2dOptions conv_options(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                      int64_t padding) {
  return torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false);
}

CallableList::CallableList(torch::nn::Module& owner, const std::string& name) {
  list_ = owner.register_module(name, torch::nn::ModuleList());
}

void CallableList::push_back(torch::nn::AnyModule module) {
  list_->push_back(module.ptr());
  modules_.push_back(std::move(module));
}

torch::Tensor CallableList::operator()(size_t i, const torch::Tensor& x) {
  return modules_.at(i).forward(x);
}

SpaceToDepthConvImpl::SpaceToDepthConvImpl(qsdk::LayerFactory& layers, const std::string& path,
                                           qsdk::LayerRole role, int64_t stride,
                                           const torch::nn::Conv2dOptions& conv)
    : stride_(stride) {
  conv_ = register_module("conv", layers.conv2d(join_path(path, "conv"), role, conv));
}

torch::Tensor SpaceToDepthConvImpl::forward(const torch::Tensor& x) {
  return conv_->forward(space_to_depth(x, stride_));
}

}  // namespace qplug_resnet_common
