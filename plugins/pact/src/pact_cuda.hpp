// Entry points of the fused CUDA PACT kernel (cuda/pact_kernels.cu); only declared when the library is
// built with CUDA (QTOOL_QUANT_CUDA, set by cmake/QtoolQuantMath.cmake).
#pragma once

#include <pact/pact_math.hpp>

#ifdef QTOOL_QUANT_CUDA
namespace qplug_pact::cuda {
/// CUDA PACT activation (float32); same semantics as qplug_pact::pact_activation.
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);
}  // namespace qplug_pact::cuda
#endif
