// ATen-composed reference of the LQ-Net level assignment (docs/methods.md#lq-net-forward,
// docs/methods.md#lq-net-backward).
#include <lqnet/lqnet_math.hpp>

#include <torch/torch.h>

namespace qplug_lqnet::composed {

namespace qc = qplug_quant_common;

std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const qc::GroupLayout& l, bool clip_top) {
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
  at::Tensor out = qc::masked_ste(x, y.view(x.sizes()), clip_top ? mask.view(x.sizes()) : at::Tensor());
  return {out, idx.view(x.sizes())};
}

}  // namespace qplug_lqnet::composed
