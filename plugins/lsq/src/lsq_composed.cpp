// ATen-composed reference of LSQ (docs/methods.md#lsq): plain tensor operators plus
// the reference's straight-through round, differentiated by autograd.
#include <lsq/lsq_math.hpp>

#include <quant_common/options.hpp>

#include <torch/torch.h>

#include <cmath>

namespace qplug_lsq::composed {
namespace {

namespace qc = qplug_quant_common;

/// GradientScale(v, g) of docs/methods.md#gradient-scale (forward (v - v g)_detached + v g).
at::Tensor gradient_scale(const at::Tensor& v, double g) {
  const double f = qc::effective_gradient_scale(g);
  if (f == 1.0) return v;
  return (v - v * f).detach() + v * f;
}

}  // namespace

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& a) {
  const auto& l = a.layout;
  at::Tensor xv = x.reshape(l.grouped_view(x.numel()));
  at::Tensor s = qc::composed::group_param(gradient_scale(clip.abs(), a.grad_factor), l);
  at::Tensor u = xv / s;
  const double lo = a.half_range ? 0.0 : -1.0;
  at::Tensor c = at::clamp(u, lo, 1.0);
  if (a.ste_scale) {
    // ClampWithScale (docs/methods.md#clamp-with-scale).
    const double p = ((u >= lo) & (u <= 1.0)).sum().item<double>();
    if (p > 0) c = gradient_scale(c, std::sqrt(static_cast<double>(u.numel()) / p));
  }
  at::Tensor y;
  if (a.half_range) {
    y = (qc::composed::round_ste(c * a.n) / a.n) * s;
  } else {
    at::Tensor q = qc::composed::round_ste(((c + 1) / 2) * a.n) / a.n;
    y = (2 * q - 1) * s;
  }
  return y.view(x.sizes());
}

}  // namespace qplug_lsq::composed
