// Fused PACT kernel (docs/methods.md#pact).
#include "cpu_util.hpp"
#include "cuda_dispatch.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// min(max(x, 0), alpha) rounded to a level k / scale; see kernels_lsq.cpp for
// the AVX2 twin and the exact reciprocal (here of scale = n / alpha).
template <bool Recip>
QC_ALWAYS_INLINE inline void forward_run(const float* __restrict xp, float* __restrict yp, int64_t b, int64_t e,
                                         float a, float scale, float rs) {
  for (int64_t i = b; i < e; ++i) {
    float v = std::max(xp[i], 0.f);
    v = v < a ? v : a;
    const float k = detail::round_even(v * scale);
    yp[i] = Recip ? k * rs : k / scale;
  }
}
template <bool Recip>
void forward_run_base(const float* xp, float* yp, int64_t b, int64_t e, float a, float scale, float rs) {
  forward_run<Recip>(xp, yp, b, e, a, scale, rs);
}
#if QC_HAVE_AVX2_DISPATCH
template <bool Recip>
QC_TARGET_AVX2 void forward_run_avx2(const float* xp, float* yp, int64_t b, int64_t e, float a, float scale,
                                     float rs) {
  forward_run<Recip>(xp, yp, b, e, a, scale, rs);
}
#endif
void forward_dispatch(const float* xp, float* yp, int64_t b, int64_t e, float a, float scale, float rs) {
#if QC_HAVE_AVX2_DISPATCH
  if (detail::cpu_has_avx2())
    return rs != 0.f ? forward_run_avx2<true>(xp, yp, b, e, a, scale, rs)
                     : forward_run_avx2<false>(xp, yp, b, e, a, scale, rs);
#endif
  rs != 0.f ? forward_run_base<true>(xp, yp, b, e, a, scale, rs) : forward_run_base<false>(xp, yp, b, e, a, scale, rs);
}

class PactFunction : public torch::autograd::Function<PactFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
    const float a = detail::small_values(alpha)[0];
    // n / alpha is a float32 tensor operation in the reference.
    const float scale = static_cast<float>(n) / a;
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    // min(max(x, 0), alpha) * scale is at most about n, so its rounding at most n + 1.
    const float rs = detail::exact_reciprocal(scale, n + 1);
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) { forward_dispatch(xp, yp, b, e, a, scale, rs); });
    ctx->save_for_backward({x, alpha});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& alpha = saved[1];
    const float a = detail::small_values(alpha)[0];
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    std::vector<double> s = detail::chunked_sums(x.numel(), 1, [&](int64_t b, int64_t e, double* acc) {
      detail::lane_sums<1>(b, e, acc, [&](int64_t i, float* c) {
        const float v = std::max(xp[i], 0.f);
        const bool below = v < a;
        gxp[i] = (below && xp[i] >= 0.f) ? gp[i] : 0.f;
        c[0] = below ? 0.f : gp[i];
      });
    });
    at::Tensor ga = at::full(alpha.sizes(), static_cast<float>(s[0]), alpha.options());
    return {gx, ga, {}};
  }
};

}  // namespace

at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
  TORCH_CHECK(alpha.numel() == 1, "PACT: alpha must hold one value, got ", alpha.sizes());
#ifdef QTOOL_QUANT_CUDA
  if (use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::pact_activation(x, alpha, n);
#endif
  if (!detail::fused_cpu_ok(x) || alpha.scalar_type() != at::kFloat) return composed::pact_activation(x, alpha, n);
  return PactFunction::apply(x, alpha, n);
}

}  // namespace qplug_quant_common
