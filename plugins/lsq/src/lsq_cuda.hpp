// Entry points of the fused CUDA LSQ kernels (cuda/lsq_kernels.cu); only declared when the library is
// built with CUDA (QTOOL_QUANT_CUDA, set by cmake/QtoolQuantMath.cmake).
#pragma once

#include <lsq/lsq_math.hpp>

#ifdef QTOOL_QUANT_CUDA
namespace qplug_lsq::cuda {
/// CUDA LSQ (float32); same semantics as qplug_lsq::lsq_quantize.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);
}  // namespace qplug_lsq::cuda
#endif
