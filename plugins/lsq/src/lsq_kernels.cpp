// Fused LSQ kernel (docs/methods.md#lsq).
#include "lsq_cuda.hpp"

#include <lsq/lsq_math.hpp>
#include <quant_common/cpu_kernels.hpp>
#include <quant_common/options.hpp>

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstring>

namespace qplug_lsq {
namespace {

namespace qc = qplug_quant_common;
namespace detail = qplug_quant_common::detail;
using qc::GroupLayout;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

// The element loops. Each is the `run` of a struct that detail::IsaDispatch
// compiles for the build's baseline ISA and for AVX2 (quant_common/cpu_kernels.hpp);
// both builds give bit-identical results: the same IEEE operations per element
// and the same eight float accumulation lanes as detail::lane_sums.

/// Level index k (an integer-valued float in [0, ceil(nf)]) divided by nf:
/// times rn when detail::exact_reciprocal vouched for it, else divided.
template <bool Recip>
QC_ALWAYS_INLINE inline float level_value(float k, float nf, float rn) {
  return Recip ? k * rn : k / nf;
}

/// Quantizes [b, e) with step sg; returns how many elements lie inside the
/// clamp range when Count (STE-scale needs it).
template <bool Half, bool Count, bool Recip>
struct ForwardRun {
  QC_ALWAYS_INLINE static int64_t run(const float* __restrict xp, float* __restrict yp, int64_t b, int64_t e,
                                      float sg, float nf, float rn) {
    int64_t count = 0;
    for (int64_t i = b; i < e; ++i) {
      const float u = xp[i] / sg;
      if (Half) {
        if (Count) count += (u >= 0.f && u <= 1.f);
        const float c = std::min(std::max(u, 0.f), 1.f);
        yp[i] = level_value<Recip>(detail::round_even(c * nf), nf, rn) * sg;
      } else {
        if (Count) count += (u >= -1.f && u <= 1.f);
        const float c = std::min(std::max(u, -1.f), 1.f);
        const float q = level_value<Recip>(detail::round_even(((c + 1.f) / 2.f) * nf), nf, rn);
        yp[i] = (2.f * q - 1.f) * sg;
      }
    }
    return count;
  }
};

/// Writes the gradient of x at element i; returns its clip-gradient term.
template <bool Half, bool Recip>
QC_ALWAYS_INLINE inline float backward_element(const float* __restrict xp, const float* __restrict gp,
                                               float* __restrict gxp, int64_t i, float sg, float nf, float rn,
                                               float k) {
  const float u = xp[i] / sg;
  float ds;
  bool in;
  // Outside the range the level value is not used, so its index may exceed ceil(nf) there.
  if (Half) {
    in = u >= 0.f && u <= 1.f;
    ds = in ? level_value<Recip>(detail::round_even(u * nf), nf, rn) - k * u : (u > 1.f ? 1.f : 0.f);
  } else {
    in = u >= -1.f && u <= 1.f;
    const float q = level_value<Recip>(detail::round_even(((u + 1.f) / 2.f) * nf), nf, rn);
    ds = in ? (2.f * q - 1.f) - k * u : (u > 1.f ? 1.f : -1.f);
  }
  gxp[i] = in ? gp[i] * k : 0.f;
  return gp[i] * ds;
}

/// Gradient of x over [b, e) with step sg; adds the run's clip-gradient sum to *out.
template <bool Half, bool Recip>
struct BackwardRun {
  QC_ALWAYS_INLINE static void run(const float* __restrict xp, const float* __restrict gp, float* __restrict gxp,
                                   int64_t b, int64_t e, float sg, float nf, float rn, float k, double* out) {
    // Eight float lanes exactly as detail::lane_sums<1>: element b + 8q + j goes
    // to lane j, the tail to lane 0. The terms are first written to a small
    // buffer so that both loops vectorise (the element loop by the loop
    // vectoriser, the lane sums as whole vectors, one add per lane each).
    typedef float Lanes __attribute__((vector_size(32)));
    constexpr int64_t kLanes = 8, kBlock = 512;
    alignas(32) float c[kBlock];
    Lanes acc = {};
    int64_t i = b;
    while (e - i >= kLanes) {
      const int64_t m = std::min<int64_t>(kBlock, (e - i) / kLanes * kLanes);
      for (int64_t t = 0; t < m; ++t) c[t] = backward_element<Half, Recip>(xp, gp, gxp, i + t, sg, nf, rn, k);
      for (int64_t t = 0; t < m; t += kLanes) {
        Lanes v;
        std::memcpy(&v, c + t, sizeof(v));
        acc += v;
      }
      i += m;
    }
    for (; i < e; ++i) acc[0] += backward_element<Half, Recip>(xp, gp, gxp, i, sg, nf, rn, k);
    for (int j = 0; j < kLanes; ++j) *out += static_cast<double>(acc[j]);
  }
};

using ForwardFn = int64_t (*)(const float*, float*, int64_t, int64_t, float, float, float);
using BackwardFn = void (*)(const float*, const float*, float*, int64_t, int64_t, float, float, float, float, double*);

template <bool Half, bool Count>
ForwardFn pick_forward(bool recip) {
  return recip ? &detail::IsaDispatch<ForwardRun<Half, Count, true>>::run
               : &detail::IsaDispatch<ForwardRun<Half, Count, false>>::run;
}
ForwardFn pick_forward(bool half, bool count, bool recip) {
  return half ? (count ? pick_forward<true, true>(recip) : pick_forward<true, false>(recip))
              : (count ? pick_forward<false, true>(recip) : pick_forward<false, false>(recip));
}
template <bool Half>
BackwardFn pick_backward(bool recip) {
  return recip ? &detail::IsaDispatch<BackwardRun<Half, true>>::run : &detail::IsaDispatch<BackwardRun<Half, false>>::run;
}
BackwardFn pick_backward(bool half, bool recip) { return half ? pick_backward<true>(recip) : pick_backward<false>(recip); }

/// The reciprocal of nf for level_value, or 0 to divide.
float level_reciprocal(float nf) { return detail::exact_reciprocal(nf, static_cast<int64_t>(std::ceil(nf))); }

class LsqFunction : public torch::autograd::Function<LsqFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& clip, double n,
                            bool half_range, double grad_factor, bool ste_scale, std::vector<int64_t> layout) {
    const GroupLayout l = GroupLayout::from_vector(layout);
    const double gf = qc::effective_gradient_scale(grad_factor);
    const std::vector<float> s = step_values(detail::small_values(clip), gf);
    at::Tensor y = at::empty_like(x);
    const float* __restrict xp = x.data_ptr<float>();
    float* __restrict yp = y.data_ptr<float>();
    const float nf = static_cast<float>(n);
    const int64_t numel = x.numel();
    // One pass: quantize and, for STE-scale, count the elements inside the clamp range.
    const float rn = level_reciprocal(nf);
    const ForwardFn run = pick_forward(half_range, ste_scale, rn != 0.f);
    std::vector<double> inside = detail::chunked_sums(numel, 1, [&](int64_t b, int64_t e, double* acc) {
      int64_t count = 0;
      detail::for_each_run(b, e, l,
                           [&](int64_t rb, int64_t re, int64_t g) { count += run(xp, yp, rb, re, s[g], nf, rn); });
      acc[0] += static_cast<double>(count);
    });
    double k = 1.0;
    if (ste_scale && inside[0] > 0) k = qc::effective_gradient_scale(std::sqrt(static_cast<double>(numel) / inside[0]));
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
    const GroupLayout l = GroupLayout::from_vector(ctx->saved_data["layout"].toIntVector());
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
    const float rn = level_reciprocal(nf);
    const BackwardFn run = pick_backward(half, rn != 0.f);
    std::vector<double> sums = detail::chunked_sums(x.numel(), l.groups, [&](int64_t b, int64_t e, double* acc) {
      detail::for_each_run(b, e, l, [&](int64_t rb, int64_t re, int64_t grp) {
        run(xp, gp, gxp, rb, re, s[grp], nf, rn, k, acc + grp);
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
  // Named in profiler traces (custom Function forwards are not recorded otherwise).
  RECORD_FUNCTION("qtool::lsq_quantize", std::vector<c10::IValue>());
  TORCH_CHECK(clip.numel() == a.layout.groups, "LSQ: clip has ", clip.numel(), " values for ", a.layout.groups,
              " groups");
#ifdef QTOOL_QUANT_CUDA
  if (qc::use_fused_kernels() && x.is_cuda() && x.scalar_type() == at::kFloat) return cuda::lsq_quantize(x, clip, a);
#endif
  if (!detail::fused_cpu_ok(x) || clip.scalar_type() != at::kFloat) return composed::lsq_quantize(x, clip, a);
  return LsqFunction::apply(x, clip, a.n, a.half_range, a.grad_factor, a.ste_scale, a.layout.to_vector());
}

}  // namespace qplug_lsq
