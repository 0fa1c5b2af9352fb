// Fused LQ-Net level assignment (docs/methods.md#lq-net-forward / docs/methods.md#lq-net-backward,
// docs/methods.md#lq-net).
#include <lqnet/lqnet_math.hpp>
#include <quant_common/cpu_kernels.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_lqnet {
namespace {

namespace detail = qplug_quant_common::detail;
using qplug_quant_common::GroupLayout;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LqAssignFunction : public torch::autograd::Function<LqAssignFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& levels,
                               const at::Tensor& thresholds, bool clip_top, std::vector<int64_t> layout) {
    const GroupLayout l = GroupLayout::from_vector(layout);
    const int64_t L = levels.size(0);
    const int64_t G = l.groups;
    // [L, G] -> per group contiguous rows for the inner loop.
    const std::vector<float> lev = detail::small_values(levels.t().contiguous());
    const std::vector<float> thr = detail::small_values(thresholds.t().contiguous());
    at::Tensor y = at::empty_like(x);
    at::Tensor idx = at::empty(x.sizes(), x.options().dtype(at::kLong));
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    int64_t* __restrict ip = idx.data_ptr<int64_t>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t g) {
        const float* tg = thr.data() + g * (L - 1);
        const float* lg = lev.data() + g * L;
        for (int64_t i = rb; i < re; ++i) {
          int64_t k = 0;
          for (int64_t t = 0; t < L - 1; ++t)
            if (xp[i] > tg[t]) k = t + 1;
          ip[i] = k;
          yp[i] = lg[k];
        }
      });
    });
    ctx->mark_non_differentiable({idx});
    ctx->saved_data["clip_top"] = clip_top;
    if (clip_top) {
      std::vector<double> top(static_cast<size_t>(G));
      for (int64_t g = 0; g < G; ++g) top[g] = lev[g * L + L - 1];
      ctx->saved_data["top"] = top;
      ctx->saved_data["layout"] = layout;
      ctx->save_for_backward({x});
    }
    return {y, idx};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    if (!ctx->saved_data["clip_top"].toBool()) return {grad[0], {}, {}, {}, {}};
    const at::Tensor x = ctx->get_saved_variables()[0];
    const std::vector<double> top = ctx->saved_data["top"].toDoubleVector();
    const GroupLayout l = GroupLayout::from_vector(ctx->saved_data["layout"].toIntVector());
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t grp) {
        const float t = static_cast<float>(top[grp]);
        for (int64_t i = rb; i < re; ++i) gxp[i] = xp[i] >= t ? 0.f : gp[i];
      });
    });
    return {gx, {}, {}, {}, {}};
  }
};

}  // namespace

std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const GroupLayout& layout, bool clip_top) {
  TORCH_CHECK(levels.dim() == 2 && levels.size(1) == layout.groups, "LQ-Net: levels must be [L, groups]");
  TORCH_CHECK(thresholds.dim() == 2 && thresholds.size(0) == levels.size(0) - 1 &&
                  thresholds.size(1) == layout.groups,
              "LQ-Net: thresholds must be [L-1, groups]");
  if (!detail::fused_cpu_ok(x)) return composed::lq_assign(x, levels, thresholds, layout, clip_top);
  return LqAssignFunction::apply(x, levels.detach(), thresholds.detach(), clip_top,
                                 layout.to_vector());
}

}  // namespace qplug_lqnet
