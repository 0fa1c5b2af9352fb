// Fused CUDA kernel of the DoReFa activation (float32). Compiled only when the build
// finds a CUDA LibTorch and nvcc (QTOOL_WITH_CUDA + CMAKE_CUDA_COMPILER,
// cmake/QtoolQuantMath.cmake); semantics are those of the CPU kernel in
// src/dorefa_kernels.cpp. The tanh weight path's kernel is quant_common's
// (cuda/dorefa_weight.cu there).
#include "../src/dorefa_cuda.hpp"

#include <quant_common/cuda_kernels.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_dorefa::cuda {
namespace {

using namespace qplug_quant_common::cuda;  // kThreads, Layout, blocks_for, warp_sum, group_add
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

__global__ void dorefa_act_forward(const float* __restrict__ x, float* __restrict__ y, int64_t n, float c,
                                   float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float v = fminf(fmaxf(x[i], 0.f), c);
    y[i] = nearbyintf(v * scale) / scale;
  }
}

__global__ void dorefa_act_backward(const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ gx,
                                    int64_t n, float c) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    gx[i] = (x[i] >= 0.f && x[i] <= c) ? g[i] : 0.f;
}

class DorefaActCuda : public torch::autograd::Function<DorefaActCuda> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double clip, int64_t n) {
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor y = at::empty_like(x);
    dorefa_act_forward<<<blocks_for(x.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), static_cast<float>(clip),
        static_cast<float>(static_cast<double>(n) / clip));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ctx->save_for_backward({x});
    ctx->saved_data["c"] = clip;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    dorefa_act_backward<<<blocks_for(x.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), x.numel(),
        static_cast<float>(ctx->saved_data["c"].toDouble()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {gx, {}, {}};
  }
};

}  // namespace

at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n) {
  return DorefaActCuda::apply(x.contiguous(), clip, n);
}

}  // namespace qplug_dorefa::cuda
