// Fused CUDA kernels for LSQ, DoReFa and PACT (float32). Compiled only when the
// build finds a CUDA LibTorch and nvcc (QTOOL_WITH_CUDA + CMAKE_CUDA_COMPILER);
// semantics are those of the CPU kernels in src/kernels_*.cpp. Per-group
// reductions use one atomicAdd per thread run (warp-reduced for one group), and
// every scalar that depends on the data (step sizes, STE-scale factor, max|tanh|)
// stays on the device, so no call synchronises with the host.
#include "../src/cuda_dispatch.hpp"

#include <quant_common/options.hpp>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int kThreads = 256;

struct Layout {
  int64_t inner, period, per_group, groups;
  __device__ int64_t group_of(int64_t i) const { return ((i / inner) % period) / per_group; }
};

Layout to_device_layout(const GroupLayout& l) { return {l.inner, l.period, l.per_group, l.groups}; }
GroupLayout from_vector(const std::vector<int64_t>& v) {
  GroupLayout l;
  l.inner = v[0];
  l.period = v[1];
  l.per_group = v[2];
  l.groups = v[3];
  return l;
}

/// Enough blocks to fill the device (8 per SM); the kernels use grid-stride loops,
/// so a bounded grid also bounds the number of atomics of the reductions.
int blocks_for(int64_t n) {
  static const int64_t cap = 8 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(b, 1), cap));
}

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

// ---------------------------------------------------------------- LSQ
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
    const double gf = effective_gradient_scale(grad_factor);
    at::Tensor s = step_values(clip, gf);
    at::Tensor y = at::empty_like(x);
    at::Tensor inside = at::zeros({1}, x.options().dtype(at::kLong));
    auto stream = at::cuda::getCurrentCUDAStream();
    lsq_forward_kernel<<<blocks_for(x.numel()), kThreads, 0, stream>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), s.data_ptr<float>(), x.numel(), to_device_layout(from_vector(layout)),
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
    const GroupLayout l = from_vector(ctx->saved_data["layout"].toIntVector());
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

// ---------------------------------------------------------------- DoReFa
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

// ---------------------------------------------------------------- PACT
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

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& a) {
  at::Tensor xc = x.contiguous();
  return LsqCuda::apply(xc, clip, a.n, a.half_range, a.grad_factor, a.ste_scale,
                        std::vector<int64_t>{a.layout.inner, a.layout.period, a.layout.per_group, a.layout.groups});
}

at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n) {
  return DorefaActCuda::apply(x.contiguous(), clip, n);
}

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
  return DorefaWeightCuda::apply(w.contiguous(), clip, n);
}

at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
  return PactCuda::apply(x.contiguous(), alpha, n);
}

}  // namespace qplug_quant_common::cuda
