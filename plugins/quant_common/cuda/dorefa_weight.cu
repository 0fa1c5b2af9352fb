// Fused CUDA kernel of the DoReFa tanh weight path (float32), shared by the dorefa
// and pact plugins. Compiled only when the build finds a CUDA LibTorch and nvcc
// (QTOOL_WITH_CUDA + CMAKE_CUDA_COMPILER, cmake/QtoolQuantMath.cmake); semantics
// are those of the CPU kernel in src/dorefa_weight_kernels.cpp. max|tanh w| stays
// on the device, so no call synchronises with the host.
#include "../src/dorefa_weight_cuda.hpp"

#include <quant_common/cuda_kernels.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common::cuda {
namespace {

using namespace qplug_quant_common::cuda;  // kThreads, Layout, blocks_for, warp_sum, group_add
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

__global__ void dorefa_wt_forward(const float* __restrict__ w, float* __restrict__ y, const float* __restrict__ mp,
                                  int64_t n, float scale) {
  const float two_m = 2.f * *mp;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float u = tanhf(w[i]) / two_m + 0.5f;
    y[i] = 2.f * (nearbyintf(u * scale) / scale) - 1.f;
  }
}

// grad_w = (1 - t^2) * (g / M + [|t| == M] * sign(t) * dM / count), dM = -sum(g t) / M^2.
__global__ void dorefa_wt_backward(const float* __restrict__ w, const float* __restrict__ g, float* __restrict__ gw,
                                   const float* __restrict__ mp, const float* __restrict__ sgt,
                                   const float* __restrict__ cnt, int64_t n) {
  const float m = *mp;
  const float dm = -(*sgt) / (m * m) / *cnt;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float t = tanhf(w[i]);
    float d = g[i] / m;
    if (fabsf(t) == m) d += (t > 0.f ? 1.f : (t < 0.f ? -1.f : 0.f)) * dm;
    gw[i] = (1.f - t * t) * d;
  }
}

class DorefaWeightCuda : public torch::autograd::Function<DorefaWeightCuda> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, double clip, int64_t n) {
    const c10::cuda::CUDAGuard guard(w.device());
    at::Tensor m = at::tanh(w).abs().max().reshape({1});
    at::Tensor y = at::empty_like(w);
    dorefa_wt_forward<<<blocks_for(w.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        w.data_ptr<float>(), y.data_ptr<float>(), m.data_ptr<float>(), w.numel(),
        static_cast<float>(static_cast<double>(n) / clip));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ctx->save_for_backward({w, m});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& w = saved[0];
    const at::Tensor& m = saved[1];
    const c10::cuda::CUDAGuard guard(w.device());
    at::Tensor g = grad[0].contiguous();
    at::Tensor t = at::tanh(w);
    at::Tensor sgt = (g * t).sum().reshape({1});
    at::Tensor cnt = (t.abs() == m).sum().to(at::kFloat).reshape({1});
    at::Tensor gw = at::empty_like(w);
    dorefa_wt_backward<<<blocks_for(w.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        w.data_ptr<float>(), g.data_ptr<float>(), gw.data_ptr<float>(), m.data_ptr<float>(), sgt.data_ptr<float>(),
        cnt.data_ptr<float>(), w.numel());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {gw, {}, {}};
  }
};

}  // namespace

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
  return DorefaWeightCuda::apply(w.contiguous(), clip, n);
}

}  // namespace qplug_quant_common::cuda
