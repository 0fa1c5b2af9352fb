// Fused non-uniform (FATNN-style) kernel (docs/methods.md#non-uniform-fatnn).
#include <nonuniform/nonuniform_math.hpp>
#include <quant_common/cpu_kernels.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace qplug_nonuniform {
namespace {

namespace detail = qplug_quant_common::detail;
using qplug_quant_common::GroupLayout;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

float rclamp(float v, float lo, float hi) { return detail::round_even(std::min(std::max(v, lo), hi)); }
bool inside(float v, float lo, float hi) { return v >= lo && v <= hi; }
float signf(float v) { return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f); }

/// Up to three slopes per group, |alpha| and 1/|alpha| precomputed in float32.
struct Slopes {
  int64_t k = 0;
  std::vector<float> a[3], inv[3], raw[3];
};

Slopes slopes(const std::vector<at::Tensor>& alphas) {
  Slopes s;
  s.k = static_cast<int64_t>(alphas.size());
  for (int64_t j = 0; j < s.k; ++j) {
    s.raw[j] = detail::small_values(alphas[j]);
    for (float v : s.raw[j]) {
      s.a[j].push_back(std::fabs(v));
      s.inv[j].push_back(1.f / std::fabs(v));
    }
  }
  return s;
}

class NonUniformFunction : public torch::autograd::Function<NonUniformFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& a0, const at::Tensor& a1,
                            const at::Tensor& a2, int64_t count, bool half, std::vector<int64_t> layout) {
    std::vector<at::Tensor> al = {a0, a1, a2};
    al.resize(static_cast<size_t>(count));
    const Slopes s = slopes(al);
    const GroupLayout l = GroupLayout::from_vector(layout);
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    detail::parallel_elements(x.numel(), [&](int64_t b, int64_t e) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t g) {
        if (!half) {
          const float p0 = s.a[0][g], p1 = s.a[1][g];
          for (int64_t i = rb; i < re; ++i) yp[i] = rclamp(p0 * xp[i], -1.f, 0.f) + rclamp(p1 * xp[i], 0.f, 1.f);
          return;
        }
        const bool has1 = s.k >= 2, has2 = s.k >= 3;
        const float p0 = s.a[0][g], p1 = has1 ? s.a[1][g] : 0.f, p2 = has2 ? s.a[2][g] : 0.f;
        const float i0 = s.inv[0][g], i1 = has1 ? s.inv[1][g] : 0.f;
        for (int64_t i = rb; i < re; ++i) {
          const float xv = xp[i];
          const float d1 = xv - i0;
          float y = rclamp(p0 * xv, 0.f, 1.f);
          y = y + (has1 ? rclamp(p1 * d1, 0.f, 1.f) : 0.f);
          y = y + (has2 ? rclamp(p2 * (d1 - i1), 0.f, 1.f) : 0.f);
          yp[i] = y;
        }
      });
    });
    ctx->save_for_backward({x, a0, a1, a2});
    ctx->saved_data["count"] = count;
    ctx->saved_data["half"] = half;
    ctx->saved_data["layout"] = layout;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const int64_t count = ctx->saved_data["count"].toInt();
    const bool half = ctx->saved_data["half"].toBool();
    const GroupLayout l = GroupLayout::from_vector(ctx->saved_data["layout"].toIntVector());
    std::vector<at::Tensor> al = {saved[1], saved[2], saved[3]};
    al.resize(static_cast<size_t>(count));
    const Slopes s = slopes(al);
    at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    const float* __restrict gp = g.data_ptr<float>();
    float* __restrict gxp = gx.data_ptr<float>();
    const int64_t G = l.groups;
    // Accumulators: [slope j][group].
    std::vector<double> sums = detail::chunked_sums(x.numel(), 3 * G, [&](int64_t b, int64_t e, double* acc) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t grp) {
        double d[3] = {0.0, 0.0, 0.0};
        if (!half) {
          const float p0 = s.a[0][grp], p1 = s.a[1][grp];
          detail::lane_sums<3>(rb, re, d, [&](int64_t i, float* c) {
            const float xv = xp[i];
            const bool m0 = inside(p0 * xv, -1.f, 0.f), m1 = inside(p1 * xv, 0.f, 1.f);
            gxp[i] = gp[i] * ((m0 ? p0 : 0.f) + (m1 ? p1 : 0.f));
            c[0] = m0 ? gp[i] * xv : 0.f;
            c[1] = m1 ? gp[i] * xv : 0.f;
            c[2] = 0.f;
          });
        } else {
          // Absent slopes are masked off by has1/has2 (a zero slope would look "inside").
          const bool has1 = s.k >= 2, has2 = s.k >= 3;
          const float p0 = s.a[0][grp];
          const float p1 = has1 ? s.a[1][grp] : 0.f, p2 = has2 ? s.a[2][grp] : 0.f;
          const float i0 = s.inv[0][grp], i1 = has1 ? s.inv[1][grp] : 0.f;
          const float d01 = p1 * i0 * i0, d02 = p2 * i0 * i0, d12 = p2 * i1 * i1;  // a_j / a_i^2 terms
          detail::lane_sums<3>(rb, re, d, [&](int64_t i, float* c) {
            const float xv = xp[i];
            const float e1 = xv - i0, e2 = e1 - i1;
            const bool m0 = inside(p0 * xv, 0.f, 1.f);
            const bool m1 = has1 && inside(p1 * e1, 0.f, 1.f);
            const bool m2 = has2 && inside(p2 * e2, 0.f, 1.f);
            const float dx = (m0 ? p0 : 0.f) + (m1 ? p1 : 0.f) + (m2 ? p2 : 0.f);
            const float g0 = (m0 ? xv : 0.f) + (m1 ? d01 : 0.f) + (m2 ? d02 : 0.f);
            const float g1 = (m1 ? e1 : 0.f) + (m2 ? d12 : 0.f);
            const float g2 = m2 ? e2 : 0.f;
            gxp[i] = gp[i] * dx;
            c[0] = gp[i] * g0;
            c[1] = gp[i] * g1;
            c[2] = gp[i] * g2;
          });
        }
        acc[grp] += d[0];
        acc[G + grp] += d[1];
        acc[2 * G + grp] += d[2];
      });
    });
    variable_list out = {gx, {}, {}, {}, {}, {}, {}};
    for (int64_t j = 0; j < count; ++j) {
      std::vector<float> ga(static_cast<size_t>(G));
      for (int64_t grp = 0; grp < G; ++grp) ga[grp] = static_cast<float>(sums[j * G + grp]) * signf(s.raw[j][grp]);
      out[1 + j] = at::tensor(ga, al[j].options()).view(al[j].sizes());
    }
    return out;
  }
};

}  // namespace

at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const GroupLayout& layout) {
  TORCH_CHECK(!alphas.empty() && alphas.size() <= 3, "non-uniform: 1 to 3 slopes expected, got ", alphas.size());
  TORCH_CHECK(half_range || alphas.size() == 2, "non-uniform: the signed form needs exactly 2 slopes");
  for (const auto& a : alphas)
    TORCH_CHECK(a.numel() == layout.groups, "non-uniform: slope has ", a.numel(), " values for ", layout.groups,
                " groups");
  bool ok = detail::fused_cpu_ok(x);
  for (const auto& a : alphas) ok = ok && a.scalar_type() == at::kFloat && a.device().is_cpu();
  if (!ok) return composed::nonuniform_quantize(x, alphas, half_range, layout);
  // Unused slots get an (ignored) undefined-free placeholder so apply() has a fixed arity.
  at::Tensor a1 = alphas.size() > 1 ? alphas[1] : alphas[0];
  at::Tensor a2 = alphas.size() > 2 ? alphas[2] : alphas[0];
  return NonUniformFunction::apply(x, alphas[0], a1, a2, static_cast<int64_t>(alphas.size()), half_range,
                                   layout.to_vector());
}

}  // namespace qplug_nonuniform
