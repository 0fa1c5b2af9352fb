// Fused kernel of the DoReFa tanh weight path (docs/methods.md#dorefa), shared by
// the dorefa and pact plugins.
#include "dorefa_weight_cuda.hpp"

#include <quant_common/cpu_kernels.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

}  // namespace

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
#ifdef QTOOL_QUANT_CUDA
  if (use_fused_kernels() && w.is_cuda() && w.scalar_type() == at::kFloat) return cuda::dorefa_weight(w, clip, n);
#endif
  if (!detail::fused_cpu_ok(w)) return composed::dorefa_weight(w, clip, n);
  return DorefaWeightFunction::apply(w, clip, n);
}

}  // namespace qplug_quant_common
