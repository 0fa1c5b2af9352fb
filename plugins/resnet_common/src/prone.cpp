#include <torch/torch.h>

#include "resnet_common/ops.hpp"
#include "resnet_common/prone.hpp"

#include <qsdk/error.hpp>

namespace qplug_resnet_common {

ProneImpl::ProneImpl(qsdk::LayerFactory& layers, const std::string& path, qsdk::LayerRole role,
                     int64_t in, int64_t out, int64_t stride, torch::nn::AnyModule norm)
    : ratio_(2 * stride), norm_(std::move(norm)) {
  if (stride != 1 && stride != 2)
    qsdk::config_error("prone", "Prone units support stride 1 or 2, got " + std::to_string(stride));
  conv_ = register_module("conv", layers.conv2d(join_path(path, "conv"), role,
                                                conv_options(in * ratio_ * ratio_, 4 * out, 1, 1, 0)));
  if (!norm_.is_empty()) register_module("bn", norm_.ptr());
}

torch::Tensor ProneImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  // The reference pads by (r - H mod r)//2 on all four sides, using H for both
  // axes; an odd remainder is therefore not fixed and the reshape below fails.
  const int64_t rem = x.size(2) % ratio_;
  if (rem != 0) {
    const int64_t pad = (ratio_ - rem) / 2;
    y = torch::constant_pad_nd(y, {pad, pad, pad, pad}, 0.0);
  }
  y = conv_->forward(space_to_depth(y, ratio_));
  if (!norm_.is_empty()) y = norm_.forward(y);
  return depth_to_space(y, 2);
}

}  // namespace qplug_resnet_common
