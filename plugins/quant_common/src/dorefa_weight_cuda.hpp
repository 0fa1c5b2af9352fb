// Entry points of the fused CUDA DoReFa tanh weight kernel (cuda/dorefa_weight.cu); only declared when the library is
// built with CUDA (QTOOL_QUANT_CUDA, set by cmake/QtoolQuantMath.cmake).
#pragma once

#include <quant_common/kernels.hpp>

#ifdef QTOOL_QUANT_CUDA
namespace qplug_quant_common::cuda {
/// CUDA DoReFa tanh weight path (float32); same semantics as qplug_quant_common::dorefa_weight.
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);
}  // namespace qplug_quant_common::cuda
#endif
