// Fused DoReFa activation and binarisation kernels (docs/methods.md#dorefa); the
// tanh weight path's kernel is quant_common's (src/dorefa_weight_kernels.cpp there).
#include "dorefa_cuda.hpp"

#include <dorefa/dorefa_math.hpp>
#include <quant_common/cpu_kernels.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_dorefa {
namespace {

namespace qc = qplug_quant_common;
namespace detail = qplug_quant_common::detail;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// clamp(x, 0, c) over [b, e), rounded to a level k / scale; the exact
/// reciprocal rs of scale = n / c replaces the division when Recip.
template <bool Recip>
struct ActRun {
  QC_ALWAYS_INLINE static void run(const float* __restrict xp, float* __restrict yp, int64_t b, int64_t e, float c,
                                   float scale, float rs) {
    for (int64_t i = b; i < e; ++i) {
      const float k = detail::round_even(std::min(std::max(xp[i], 0.f), c) * scale);
      yp[i] = Recip ? k * rs : k / scale;
    }
  }
};
void act_dispatch(const float* xp, float* yp, int64_t b, int64_t e, float c, float scale, float rs) {
  rs != 0.f ? detail::IsaDispatch<ActRun<true>>::run(xp, yp, b, e, c, scale, rs)
            : detail::IsaDispatch<ActRun<false>>::run(xp, yp, b, e, c, scale, rs);
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
  if (qc::use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::dorefa_activation(x, clip, n);
#endif
  if (!detail::fused_cpu_ok(x)) return composed::dorefa_activation(x, clip, n);
  return DorefaActFunction::apply(x, clip, n);
}

at::Tensor dorefa_binarize(const at::Tensor& w) {
  if (!detail::fused_cpu_ok(w)) return composed::dorefa_binarize(w);
  return BinarizeFunction::apply(w);
}

}  // namespace qplug_dorefa
