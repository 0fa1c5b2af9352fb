// Fused LSQ kernel (spec §4.3, golden README §2.2).
#include "cpu_util.hpp"
#include "cuda_dispatch.hpp"

#include <quant_common/options.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_quant_common {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> pack(const GroupLayout& l) { return {l.inner, l.period, l.per_group, l.groups}; }
GroupLayout unpack(const std::vector<int64_t>& v) {
  GroupLayout l;
  l.inner = v[0];
  l.period = v[1];
  l.per_group = v[2];
  l.groups = v[3];
  return l;
}

/// Forward value of GradientScale(|clip|, f): (a - a*f) + a*f in float32.
std::vector<float> step_values(const std::vector<float>& clip, double f) {
  std::vector<float> s(clip.size());
  const float ff = static_cast<float>(f);
  for (size_t i = 0; i < clip.size(); ++i) {
    const float a = std::fabs(clip[i]);
    s[i] = f == 1.0 ? a : (a - a * ff) + a * ff;
  }
  return s;
}

class LsqFunction : public torch::autograd::Function<LsqFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& clip, double n,
                            bool half_range, double grad_factor, bool ste_scale, std::vector<int64_t> layout) {
    const GroupLayout l = unpack(layout);
    const double gf = effective_gradient_scale(grad_factor);
    const std::vector<float> s = step_values(detail::small_values(clip), gf);
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    const float nf = static_cast<float>(n);
    const float lo = half_range ? 0.f : -1.f;
    const int64_t numel = x.numel();
    // One pass: quantize and count the elements inside the clamp range (for STE-scale).
    std::vector<double> inside = detail::chunked_sums(numel, 1, [&](int64_t b, int64_t e, double* acc) {
      int64_t count = 0;
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t g) {
        const float sg = s[g];
        if (half_range) {
          for (int64_t i = rb; i < re; ++i) {
            const float u = xp[i] / sg;
            count += (u >= 0.f && u <= 1.f);
            const float c = std::min(std::max(u, 0.f), 1.f);
            yp[i] = (detail::round_even(c * nf) / nf) * sg;
          }
        } else {
          for (int64_t i = rb; i < re; ++i) {
            const float u = xp[i] / sg;
            count += (u >= -1.f && u <= 1.f);
            const float c = std::min(std::max(u, -1.f), 1.f);
            const float q = detail::round_even(((c + 1.f) / 2.f) * nf) / nf;
            yp[i] = (2.f * q - 1.f) * sg;
          }
        }
      });
      acc[0] += static_cast<double>(count);
    });
    double k = 1.0;
    if (ste_scale && inside[0] > 0) k = effective_gradient_scale(std::sqrt(static_cast<double>(numel) / inside[0]));
    (void)lo;
    ctx->save_for_backward({x, clip});
    ctx->saved_data["n"] = n;
    ctx->saved_data["half"] = half_range;
    ctx->saved_data["gf"] = gf;
    ctx->saved_data["k"] = k;
    ctx->saved_data["layout"] = layout;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& clip = saved[1];
    const GroupLayout l = unpack(ctx->saved_data["layout"].toIntVector());
    const double gf = ctx->saved_data["gf"].toDouble();
    const bool half = ctx->saved_data["half"].toBool();
    const float nf = static_cast<float>(ctx->saved_data["n"].toDouble());
    const float k = static_cast<float>(ctx->saved_data["k"].toDouble());
    const std::vector<float> cv = detail::small_values(clip);
    const std::vector<float> s = step_values(cv, gf);
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    std::vector<double> sums = detail::chunked_sums(x.numel(), l.groups, [&](int64_t b, int64_t e, double* acc) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t grp) {
        const float sg = s[grp];
        if (half) {
          detail::lane_sums<1>(rb, re, acc + grp, [&](int64_t i, float* c) {
            const float u = xp[i] / sg;
            const bool in = u >= 0.f && u <= 1.f;
            const float ds = in ? detail::round_even(u * nf) / nf - k * u : (u > 1.f ? 1.f : 0.f);
            gxp[i] = in ? gp[i] * k : 0.f;
            c[0] = gp[i] * ds;
          });
        } else {
          detail::lane_sums<1>(rb, re, acc + grp, [&](int64_t i, float* c) {
            const float u = xp[i] / sg;
            const bool in = u >= -1.f && u <= 1.f;
            const float q = detail::round_even(((u + 1.f) / 2.f) * nf) / nf;
            const float ds = in ? (2.f * q - 1.f) - k * u : (u > 1.f ? 1.f : -1.f);
            gxp[i] = in ? gp[i] * k : 0.f;
            c[0] = gp[i] * ds;
          });
        }
      });
    });
    std::vector<float> gc(cv.size());
    for (size_t i = 0; i < cv.size(); ++i) {
      const float sign = cv[i] > 0.f ? 1.f : (cv[i] < 0.f ? -1.f : 0.f);
      gc[i] = static_cast<float>(sums[i] * gf) * sign;
    }
    at::Tensor gclip = at::tensor(gc, clip.options().device(at::kCPU)).view(clip.sizes()).to(clip.device());
    return {gx, gclip, {}, {}, {}, {}, {}};
  }
};

}  // namespace

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& a) {
  TORCH_CHECK(clip.numel() == a.layout.groups, "LSQ: clip has ", clip.numel(), " values for ", a.layout.groups,
              " groups");
#ifdef QTOOL_QUANT_CUDA
  if (use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::lsq_quantize(x, clip, a);
#endif
  if (!detail::fused_cpu_ok(x) || clip.scalar_type() != at::kFloat) return composed::lsq_quantize(x, clip, a);
  return LsqFunction::apply(x, clip, a.n, a.half_range, a.grad_factor, a.ste_scale, pack(a.layout));
}

}  // namespace qplug_quant_common
