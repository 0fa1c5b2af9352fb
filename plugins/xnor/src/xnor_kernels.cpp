// Fused XNOR binarisation (docs/methods.md#xnor-binarisation).
#include <quant_common/cpu_kernels.hpp>
#include <xnor/xnor_math.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_xnor {
namespace {

namespace detail = qplug_quant_common::detail;
using qplug_quant_common::GroupLayout;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class XnorFunction : public torch::autograd::Function<XnorFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale, bool has_scale,
                            int64_t grad, std::vector<int64_t> layout) {
    const GroupLayout l = GroupLayout::from_vector(layout);
    std::vector<float> e = has_scale ? detail::small_values(scale) : std::vector<float>(1, 1.f);
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t en) {
      detail::for_each_run(b, en, l, [&](int64_t rb, int64_t re, int64_t g) {
        const float eg = e[has_scale ? g : 0];
        for (int64_t i = rb; i < re; ++i) yp[i] = xp[i] < 0.f ? -eg : eg;
      });
    });
    ctx->saved_data["grad"] = grad;
    if (grad != static_cast<int64_t>(SignGrad::identity)) ctx->save_for_backward({x});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto kind = static_cast<SignGrad>(ctx->saved_data["grad"].toInt());
    if (kind == SignGrad::identity) return {grad[0], {}, {}, {}, {}};
    const at::Tensor x = ctx->get_saved_variables()[0];
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) {
      if (kind == SignGrad::ste) {
        for (int64_t i = b; i < e; ++i) gxp[i] = (xp[i] > -1.f && xp[i] < 1.f) ? gp[i] : 0.f;
      } else {
        for (int64_t i = b; i < e; ++i) {
          const float a = std::fabs(xp[i]);
          gxp[i] = a < 1.f ? gp[i] * (2.f - 2.f * a) : 0.f;
        }
      }
    });
    return {gx, {}, {}, {}, {}};
  }
};

}  // namespace

at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad,
                         const GroupLayout& layout) {
  if (group_scale.defined())
    TORCH_CHECK(group_scale.numel() == layout.groups, "XNOR: scale has ", group_scale.numel(), " values for ",
                layout.groups, " groups");
  if (!detail::fused_cpu_ok(x)) return composed::xnor_binarize(x, group_scale, grad, layout);
  // Undefined tensors cannot be Function inputs: "no scale" is a flag plus a placeholder.
  const bool has_scale = group_scale.defined();
  at::Tensor s = has_scale ? group_scale.detach() : at::empty({0}, x.options());
  return XnorFunction::apply(x, s, has_scale, static_cast<int64_t>(grad),
                             layout.to_vector());
}

}  // namespace qplug_xnor
