// Entry points of the fused CUDA kernels (cuda/kernels_cuda.cu); only declared
// when the library is built with CUDA (QTOOL_QUANT_CUDA).
#pragma once

#include <quant_common/kernels.hpp>

#ifdef QTOOL_QUANT_CUDA
namespace qplug_quant_common::cuda {
/// CUDA LSQ (float32); same semantics as qplug_quant_common::lsq_quantize.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);
/// CUDA DoReFa activation (float32).
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
/// CUDA DoReFa tanh weight path (float32).
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);
/// CUDA PACT activation (float32).
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);
}  // namespace qplug_quant_common::cuda
#endif
