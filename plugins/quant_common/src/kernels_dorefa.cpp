// Fused DoReFa kernels (docs/methods.md#dorefa).
#include "cpu_util.hpp"
#include "cuda_dispatch.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// clamp(x, 0, c), rounded to a level k / scale; see kernels_lsq.cpp for the
// AVX2 twin and the exact reciprocal (here of scale = n / c).
template <bool Recip>
QC_ALWAYS_INLINE inline void act_run(const float* __restrict xp, float* __restrict yp, int64_t b, int64_t e, float c,
                                     float scale, float rs) {
  for (int64_t i = b; i < e; ++i) {
    const float k = detail::round_even(std::min(std::max(xp[i], 0.f), c) * scale);
    yp[i] = Recip ? k * rs : k / scale;
  }
}
template <bool Recip>
void act_run_base(const float* xp, float* yp, int64_t b, int64_t e, float c, float scale, float rs) {
  act_run<Recip>(xp, yp, b, e, c, scale, rs);
}
#if QC_HAVE_AVX2_DISPATCH
template <bool Recip>
QC_TARGET_AVX2 void act_run_avx2(const float* xp, float* yp, int64_t b, int64_t e, float c, float scale, float rs) {
  act_run<Recip>(xp, yp, b, e, c, scale, rs);
}
#endif
void act_dispatch(const float* xp, float* yp, int64_t b, int64_t e, float c, float scale, float rs) {
#if QC_HAVE_AVX2_DISPATCH
  if (detail::cpu_has_avx2())
    return rs != 0.f ? act_run_avx2<true>(xp, yp, b, e, c, scale, rs) : act_run_avx2<false>(xp, yp, b, e, c, scale, rs);
#endif
  rs != 0.f ? act_run_base<true>(xp, yp, b, e, c, scale, rs) : act_run_base<false>(xp, yp, b, e, c, scale, rs);
}

class DorefaActFunction : public torch::autograd::Function<DorefaActFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double clip, int64_t n) {
    // qfn: scale = n / c computed in double, cast to float32 when it meets the tensor.
    const float scale = static_cast<float>(static_cast<double>(n) / clip);
    const float c = static_cast<float>(clip);
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    // clamp(x, 0, c) * scale is at most about n, so its rounding at most n + 1.
    const float rs = detail::exact_reciprocal(scale, n + 1);
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) { act_dispatch(xp, yp, b, e, c, scale, rs); });
    ctx->save_for_backward({x});
    ctx->saved_data["c"] = clip;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const float c = static_cast<float>(ctx->saved_data["c"].toDouble());
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) gxp[i] = (xp[i] >= 0.f && xp[i] <= c) ? gp[i] : 0.f;
    });
    return {gx, {}, {}};
  }
};

class DorefaWeightFunction : public torch::autograd::Function<DorefaWeightFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, double clip, int64_t n) {
    const float scale = static_cast<float>(static_cast<double>(n) / clip);
    const int64_t numel = w.numel();
    // t = tanh(w) through ATen's vectorised kernel; backward needs t itself (not w).
    const at::Tensor t = at::tanh(w).contiguous();
    const float* __restrict tp = t.data_ptr<float>();
    // A CPU tensor's value read straight from host memory: this kernel never runs
    // on a GPU (the CUDA kernel keeps the max on the device), and item() would be
    // counted as a device synchronisation by the trainer's test seam.
    const float m = *t.abs().max().data_ptr<float>();
    const float two_m = 2.f * m;
    // The arg-max elements receive the gradient of the max (split evenly among ties).
    std::vector<int64_t> argmax;
    for (int64_t i = 0; i < numel; ++i)
      if (std::fabs(tp[i]) == m) argmax.push_back(i);
    at::Tensor y = at::empty_like(w);
    float* __restrict yp = y.data_ptr<float>();
    detail::parallel_elements(numel, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float u = tp[i] / two_m + 0.5f;
        yp[i] = 2.f * (detail::round_even(u * scale) / scale) - 1.f;
      }
    });
    ctx->save_for_backward({t});
    ctx->saved_data["m"] = static_cast<double>(m);
    ctx->saved_data["argmax"] = argmax;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const at::Tensor t = ctx->get_saved_variables()[0];
    const float m = static_cast<float>(ctx->saved_data["m"].toDouble());
    const std::vector<int64_t> argmax = ctx->saved_data["argmax"].toIntVector();
    at::Tensor g = grad[0].contiguous();
    at::Tensor gw = at::empty_like(t);
    const float* __restrict tp = t.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gwp = gw.data_ptr<float>();
    const float inv_m = 1.f / m;
    // dL/du = 2g; du/dt = 1/(2M) -> g/M; dL/dM = -sum(g t)/M^2.
    std::vector<double> s = detail::chunked_sums(t.numel(), 1, [&](int64_t b, int64_t e, double* acc) {
      float a = 0.f;
      for (int64_t i = b; i < e; ++i) {
        a += gp[i] * tp[i];
        gwp[i] = (1.f - tp[i] * tp[i]) * (gp[i] * inv_m);
      }
      acc[0] += a;
    });
    const double dm = -s[0] / (static_cast<double>(m) * m) / static_cast<double>(argmax.size());
    for (int64_t i : argmax) {
      const float ti = tp[i];
      const float sign = ti > 0.f ? 1.f : (ti < 0.f ? -1.f : 0.f);
      gwp[i] += (1.f - ti * ti) * sign * static_cast<float>(dm);
    }
    return {gw, {}, {}};
  }
};

class BinarizeFunction : public torch::autograd::Function<BinarizeFunction> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& w) {
    const int64_t numel = w.numel();
    const float* __restrict wp = w.data_ptr<float>();
    std::vector<double> s = detail::chunked_sums(numel, 1, [&](int64_t b, int64_t e, double* acc) {
      double a = 0.0;
      for (int64_t i = b; i < e; ++i) a += std::fabs(wp[i]);
      acc[0] += a;
    });
    const float mean = static_cast<float>(s[0] / static_cast<double>(numel));
    at::Tensor y = at::empty_like(w);
    float* __restrict yp = y.data_ptr<float>();
    detail::parallel_elements(numel, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) yp[i] = wp[i] < 0.f ? -mean : mean;
    });
    return y;
  }
  static variable_list backward(AutogradContext*, variable_list grad) { return {grad[0]}; }
};

}  // namespace

at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n) {
#ifdef QTOOL_QUANT_CUDA
  if (use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::dorefa_activation(x, clip, n);
#endif
  if (!detail::fused_cpu_ok(x)) return composed::dorefa_activation(x, clip, n);
  return DorefaActFunction::apply(x, clip, n);
}

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
#ifdef QTOOL_QUANT_CUDA
  if (use_fused_kernels() && w.is_cuda() && w.scalar_type() == at::kFloat) return cuda::dorefa_weight(w, clip, n);
#endif
  if (!detail::fused_cpu_ok(w)) return composed::dorefa_weight(w, clip, n);
  return DorefaWeightFunction::apply(w, clip, n);
}

at::Tensor dorefa_binarize(const at::Tensor& w) {
  if (!detail::fused_cpu_ok(w)) return composed::dorefa_binarize(w);
  return BinarizeFunction::apply(w);
}

}  // namespace qplug_quant_common
