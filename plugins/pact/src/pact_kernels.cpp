// Fused PACT activation kernel (docs/methods.md#pact); PACT's weights use the DoReFa
// tanh path of quant_common (src/dorefa_weight_kernels.cpp there).
#include "pact_cuda.hpp"

#include <pact/pact_math.hpp>
#include <quant_common/cpu_kernels.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_pact {
namespace {

namespace qc = qplug_quant_common;
namespace detail = qplug_quant_common::detail;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// min(max(x, 0), alpha) over [b, e), rounded to a level k / scale; the exact
/// reciprocal rs of scale = n / alpha replaces the division when Recip.
template <bool Recip>
struct ForwardRun {
  QC_ALWAYS_INLINE static void run(const float* __restrict xp, float* __restrict yp, int64_t b, int64_t e, float a,
                                   float scale, float rs) {
    for (int64_t i = b; i < e; ++i) {
      float v = std::max(xp[i], 0.f);
      v = v < a ? v : a;
      const float k = detail::round_even(v * scale);
      yp[i] = Recip ? k * rs : k / scale;
    }
  }
};
void forward_dispatch(const float* xp, float* yp, int64_t b, int64_t e, float a, float scale, float rs) {
  rs != 0.f ? detail::IsaDispatch<ForwardRun<true>>::run(xp, yp, b, e, a, scale, rs)
            : detail::IsaDispatch<ForwardRun<false>>::run(xp, yp, b, e, a, scale, rs);
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
  if (qc::use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::pact_activation(x, alpha, n);
#endif
  if (!detail::fused_cpu_ok(x) || alpha.scalar_type() != at::kFloat) return composed::pact_activation(x, alpha, n);
  return PactFunction::apply(x, alpha, n);
}

}  // namespace qplug_pact
