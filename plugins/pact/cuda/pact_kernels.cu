// Fused CUDA kernel of the PACT activation (float32). Compiled only when the build
// finds a CUDA LibTorch and nvcc (QTOOL_WITH_CUDA + CMAKE_CUDA_COMPILER,
// cmake/QtoolQuantMath.cmake); semantics are those of the CPU kernel in
// src/pact_kernels.cpp. alpha stays on the device, so no call synchronises with the host.
#include "../src/pact_cuda.hpp"

#include <quant_common/cuda_kernels.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_pact::cuda {
namespace {

using namespace qplug_quant_common::cuda;  // kThreads, Layout, blocks_for, warp_sum, group_add
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

__global__ void pact_forward(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ ap,
                             int64_t n, float nf) {
  const float a = *ap;
  const float scale = nf / a;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float v = fmaxf(x[i], 0.f);
    v = v < a ? v : a;
    y[i] = nearbyintf(v * scale) / scale;
  }
}

__global__ void pact_backward(const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ gx,
                              const float* __restrict__ ap, int64_t n, float* __restrict__ ga) {
  const float a = *ap;
  float acc = 0.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const bool below = fmaxf(x[i], 0.f) < a;
    gx[i] = (below && x[i] >= 0.f) ? g[i] : 0.f;
    if (!below) acc += g[i];
  }
  group_add(ga, 0, acc, true);
}

class PactCuda : public torch::autograd::Function<PactCuda> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor a = alpha.detach().to(at::kFloat).contiguous();
    at::Tensor y = at::empty_like(x);
    pact_forward<<<blocks_for(x.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), a.data_ptr<float>(), x.numel(), static_cast<float>(n));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ctx->save_for_backward({x, alpha});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& alpha = saved[1];
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor a = alpha.detach().to(at::kFloat).contiguous();
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    at::Tensor ga = at::zeros({1}, x.options());
    pact_backward<<<blocks_for(x.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), a.data_ptr<float>(), x.numel(),
        ga.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {gx, ga.view(alpha.sizes()).to(alpha.scalar_type()), {}};
  }
};

}  // namespace

at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
  return PactCuda::apply(x.contiguous(), alpha, n);
}

}  // namespace qplug_pact::cuda
