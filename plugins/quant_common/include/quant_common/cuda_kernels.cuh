// quant_common/cuda_kernels.cuh - launch and reduction helpers shared by the quantizer
// plugins' CUDA kernels (plugins/<method>/cuda/<method>_kernels.cu and
// quant_common/cuda/dorefa_weight.cu). Included only by .cu files, which cmake/QtoolQuantMath.cmake
// compiles when the build finds a CUDA LibTorch and nvcc (or compile-checks when only nvcc exists).
#pragma once

#include <quant_common/kernels.hpp>

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cstdint>

namespace qplug_quant_common::cuda {

/// Threads per block of every quantizer kernel.
constexpr int kThreads = 256;

/// GroupLayout in a form a kernel can take by value.
struct Layout {
  int64_t inner, period, per_group, groups;
  /// Group of flat element `i` (as GroupLayout::group_of).
  __device__ int64_t group_of(int64_t i) const { return ((i / inner) % period) / per_group; }
};

/// The kernel form of `l`.
inline Layout to_device_layout(const GroupLayout& l) { return {l.inner, l.period, l.per_group, l.groups}; }

/// Enough blocks to fill the device (8 per SM); the kernels use grid-stride loops,
/// so a bounded grid also bounds the number of atomics of the reductions.
inline int blocks_for(int64_t n) {
  static const int64_t cap = 8 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(b, 1), cap));
}

/// Sum of `v` over the warp (valid in lane 0).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/// Adds `v` to out[g]; with a single group the warp reduces first.
__device__ __forceinline__ void group_add(float* out, int64_t g, float v, bool single) {
  if (single) {
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, v);
  } else if (v != 0.f) {
    atomicAdd(out + g, v);
  }
}

}  // namespace qplug_quant_common::cuda
