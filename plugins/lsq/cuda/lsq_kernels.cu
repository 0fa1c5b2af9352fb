// Fused CUDA kernels of LSQ (float32). Compiled only when the build finds a CUDA
// LibTorch and nvcc (QTOOL_WITH_CUDA + CMAKE_CUDA_COMPILER, cmake/QtoolQuantMath.cmake);
// semantics are those of the CPU kernel in src/lsq_kernels.cpp. Per-group
// reductions use one atomicAdd per thread run (warp-reduced for one group), and
// every scalar that depends on the data (step sizes, STE-scale factor) stays on
// the device, so no call synchronises with the host.
#include "../src/lsq_cuda.hpp"

#include <quant_common/cuda_kernels.cuh>
#include <quant_common/options.hpp>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_lsq::cuda {
namespace {

namespace qc = qplug_quant_common;
using namespace qplug_quant_common::cuda;  // kThreads, Layout, blocks_for, warp_sum, group_add
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

__global__ void lsq_forward_kernel(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ s,
                                   int64_t n, Layout l, float nf, bool half, unsigned long long* inside) {
  unsigned long long count = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float sg = s[l.group_of(i)];
    const float u = x[i] / sg;
    if (half) {
      count += (u >= 0.f && u <= 1.f);
      const float c = fminf(fmaxf(u, 0.f), 1.f);
      y[i] = (nearbyintf(c * nf) / nf) * sg;
    } else {
      count += (u >= -1.f && u <= 1.f);
      const float c = fminf(fmaxf(u, -1.f), 1.f);
      const float q = nearbyintf(((c + 1.f) / 2.f) * nf) / nf;
      y[i] = (2.f * q - 1.f) * sg;
    }
  }
  for (int o = 16; o > 0; o >>= 1) count += __shfl_down_sync(0xffffffffu, count, o);
  if ((threadIdx.x & 31) == 0 && count) atomicAdd(inside, count);
}

__global__ void lsq_backward_kernel(const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ gx,
                                    const float* __restrict__ s, const float* __restrict__ kp, int64_t n, Layout l,
                                    float nf, bool half, float* __restrict__ gsum) {
  const float k = *kp;
  const bool single = l.groups == 1;
  float acc = 0.f;
  int64_t cur = -1;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t grp = l.group_of(i);
    if (!single && grp != cur) {
      if (cur >= 0 && acc != 0.f) atomicAdd(gsum + cur, acc);
      acc = 0.f;
      cur = grp;
    }
    const float sg = s[grp];
    const float u = x[i] / sg;
    float ds;
    bool in;
    if (half) {
      in = u >= 0.f && u <= 1.f;
      ds = in ? nearbyintf(u * nf) / nf - k * u : (u > 1.f ? 1.f : 0.f);
    } else {
      in = u >= -1.f && u <= 1.f;
      ds = in ? (2.f * (nearbyintf(((u + 1.f) / 2.f) * nf) / nf) - 1.f) - k * u : (u > 1.f ? 1.f : -1.f);
    }
    gx[i] = in ? g[i] * k : 0.f;
    acc += g[i] * ds;
  }
  if (single) {
    group_add(gsum, 0, acc, true);
  } else if (cur >= 0 && acc != 0.f) {
    atomicAdd(gsum + cur, acc);
  }
}

/// GradientScale(|clip|, f) forward value, on the device.
at::Tensor step_values(const at::Tensor& clip, double f) {
  at::Tensor a = clip.detach().abs().to(at::kFloat).contiguous().view({-1});
  if (f == 1.0) return a;
  return (a - a * f) + a * f;
}

class LsqCuda : public torch::autograd::Function<LsqCuda> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& clip, double n, bool half,
                            double grad_factor, bool ste_scale, std::vector<int64_t> layout) {
    const c10::cuda::CUDAGuard guard(x.device());
    const double gf = qc::effective_gradient_scale(grad_factor);
    at::Tensor s = step_values(clip, gf);
    at::Tensor y = at::empty_like(x);
    at::Tensor inside = at::zeros({1}, x.options().dtype(at::kLong));
    auto stream = at::cuda::getCurrentCUDAStream();
    lsq_forward_kernel<<<blocks_for(x.numel()), kThreads, 0, stream>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), s.data_ptr<float>(), x.numel(), to_device_layout(qc::GroupLayout::from_vector(layout)),
        static_cast<float>(n), half, reinterpret_cast<unsigned long long*>(inside.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // STE-scale factor k = sqrt(N/P) (int() rule, no scaling when P = 0), kept on the device.
    at::Tensor k = at::ones({1}, x.options());
    if (ste_scale) {
      at::Tensor p = inside.to(at::kFloat);
      at::Tensor r = at::sqrt(static_cast<double>(x.numel()) / p.clamp_min(1));
      r = at::where(p > 0, r, at::ones_like(r));
      k = at::where(r.trunc() == 1, at::ones_like(r), r);
    }
    ctx->save_for_backward({x, clip, k});
    ctx->saved_data["n"] = n;
    ctx->saved_data["half"] = half;
    ctx->saved_data["gf"] = gf;
    ctx->saved_data["layout"] = layout;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& clip = saved[1];
    const at::Tensor& k = saved[2];
    const c10::cuda::CUDAGuard guard(x.device());
    const double gf = ctx->saved_data["gf"].toDouble();
    const qc::GroupLayout l = qc::GroupLayout::from_vector(ctx->saved_data["layout"].toIntVector());
    at::Tensor s = step_values(clip, gf);
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    at::Tensor sums = at::zeros({l.groups}, x.options());
    auto stream = at::cuda::getCurrentCUDAStream();
    lsq_backward_kernel<<<blocks_for(x.numel()), kThreads, 0, stream>>>(
        x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), s.data_ptr<float>(), k.data_ptr<float>(),
        x.numel(), to_device_layout(l), static_cast<float>(ctx->saved_data["n"].toDouble()),
        ctx->saved_data["half"].toBool(), sums.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor gclip = (sums * gf * clip.detach().view({-1}).sign()).view(clip.sizes()).to(clip.scalar_type());
    return {gx, gclip, {}, {}, {}, {}, {}};
  }
};

}  // namespace

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& a) {
  at::Tensor xc = x.contiguous();
  return LsqCuda::apply(xc, clip, a.n, a.half_range, a.grad_factor, a.ste_scale, a.layout.to_vector());
}

}  // namespace qplug_lsq::cuda
