// Entry points of the fused CUDA DoReFa activation kernel (cuda/dorefa_kernels.cu); only declared when the library is
// built with CUDA (QTOOL_QUANT_CUDA, set by cmake/QtoolQuantMath.cmake).
#pragma once

#include <dorefa/dorefa_math.hpp>

#ifdef QTOOL_QUANT_CUDA
namespace qplug_dorefa::cuda {
/// CUDA DoReFa activation (float32); same semantics as qplug_dorefa::dorefa_activation.
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
}  // namespace qplug_dorefa::cuda
#endif
