// ATen-composed reference implementations of the quantizer math: plain tensor
// operators plus the reference's straight-through round, differentiated by autograd.
#include <quant_common/kernels.hpp>
#include <quant_common/options.hpp>

#include <torch/torch.h>

#include <cmath>

namespace qplug_quant_common::composed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RoundSte : public torch::autograd::Function<RoundSte> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& v) { return at::round(v); }
  static variable_list backward(AutogradContext*, variable_list g) { return {g[0]}; }
};

/// GradientScale(v, g) of docs/methods.md#gradient-scale (forward (v - v g)_detached + v g).
at::Tensor gradient_scale(const at::Tensor& v, double g) {
  const double f = effective_gradient_scale(g);
  if (f == 1.0) return v;
  return (v - v * f).detach() + v * f;
}

/// Per-group parameter viewed to broadcast against x.view(grouped_view).
at::Tensor group_param(const at::Tensor& p, const GroupLayout& l) { return p.reshape({1, l.groups, 1}); }

}  // namespace

at::Tensor round_ste(const at::Tensor& v) { return RoundSte::apply(v); }

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& a) {
  const auto& l = a.layout;
  at::Tensor xv = x.reshape(l.grouped_view(x.numel()));
  at::Tensor s = group_param(gradient_scale(clip.abs(), a.grad_factor), l);
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
    y = (round_ste(c * a.n) / a.n) * s;
  } else {
    at::Tensor q = round_ste(((c + 1) / 2) * a.n) / a.n;
    y = (2 * q - 1) * s;
  }
  return y.view(x.sizes());
}

at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n) {
  const double scale = static_cast<double>(n) / clip;
  return round_ste(at::clamp(x, 0.0, clip) * scale) / scale;
}

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
  const double scale = static_cast<double>(n) / clip;
  at::Tensor t = at::tanh(w);
  at::Tensor u = t / (2 * t.abs().max()) + 0.5;
  return 2 * (round_ste(u * scale) / scale) - 1;
}

at::Tensor dorefa_binarize(const at::Tensor& w) {
  at::Tensor e = w.detach().abs().mean();
  at::Tensor y = at::where(w.detach() < 0, -e, e);
  return masked_ste(w, y, at::Tensor());
}

at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
  at::Tensor v = at::clamp_min(x, 0.0);  // inclusive at 0, unlike relu's backward
  v = at::where(v < alpha, v, alpha);
  at::Tensor scale = static_cast<double>(n) / alpha.detach();
  return round_ste(v * scale) / scale;
}

at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const GroupLayout& l) {
  at::Tensor xv = x.reshape(l.grouped_view(x.numel()));
  std::vector<at::Tensor> a;
  for (const auto& al : alphas) a.push_back(group_param(al.abs(), l));
  at::Tensor y;
  if (!half_range) {
    y = round_ste(at::clamp(a[0] * xv, -1.0, 0.0)) + round_ste(at::clamp(a[1] * xv, 0.0, 1.0));
  } else {
    y = round_ste(at::clamp(a[0] * xv, 0.0, 1.0));
    if (a.size() >= 2) {
      at::Tensor d1 = xv - 1.0 / a[0];
      y = y + round_ste(at::clamp(a[1] * d1, 0.0, 1.0));
      if (a.size() >= 3) y = y + round_ste(at::clamp(a[2] * (d1 - 1.0 / a[1]), 0.0, 1.0));
    }
  }
  return y.view(x.sizes());
}

at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad, const GroupLayout& l) {
  at::Tensor xd = x.detach();
  at::Tensor sign = at::where(xd < 0, at::full({}, -1.0, xd.options()), at::full({}, 1.0, xd.options()));
  at::Tensor y = sign;
  if (group_scale.defined())
    y = (sign.reshape(l.grouped_view(x.numel())) * group_param(group_scale.detach(), l)).view(x.sizes());
  at::Tensor mask;
  if (grad == SignGrad::ste) mask = (xd > -1) & (xd < 1);
  if (grad == SignGrad::triangle) mask = at::where(xd.abs() < 1, 2 - 2 * xd.abs(), at::zeros_like(xd));
  return masked_ste(x, y, mask);
}

std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const GroupLayout& l, bool clip_top) {
  at::Tensor xd = x.detach().reshape(l.grouped_view(x.numel()));
  const int64_t L = levels.size(0);
  at::Tensor idx = at::zeros(xd.sizes(), xd.options().dtype(at::kLong));
  for (int64_t t = 0; t < L - 1; ++t) {
    at::Tensor thr = thresholds[t].detach().reshape({1, l.groups, 1});
    idx = at::where(xd > thr, at::full({}, t + 1, idx.options()), idx);
  }
  // levels [L, G] -> gather per group.
  at::Tensor lev = levels.detach().t().contiguous();  // [G, L]
  at::Tensor gidx = at::arange(l.groups, idx.options()).reshape({1, l.groups, 1}) * L + idx;
  at::Tensor y = lev.flatten().index_select(0, gidx.flatten()).view(xd.sizes());
  at::Tensor mask;
  if (clip_top) mask = xd < lev.select(1, L - 1).reshape({1, l.groups, 1});
  at::Tensor out = masked_ste(x, y.view(x.sizes()), clip_top ? mask.view(x.sizes()) : at::Tensor());
  return {out, idx.view(x.sizes())};
}

}  // namespace qplug_quant_common::composed
