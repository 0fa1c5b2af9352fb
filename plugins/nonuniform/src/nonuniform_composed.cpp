// ATen-composed reference of the non-uniform quantizer (docs/methods.md#non-uniform-fatnn).
#include <nonuniform/nonuniform_math.hpp>

#include <torch/torch.h>

namespace qplug_nonuniform::composed {

namespace qc = qplug_quant_common;

at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const qc::GroupLayout& l) {
  using qc::composed::round_ste;
  at::Tensor xv = x.reshape(l.grouped_view(x.numel()));
  std::vector<at::Tensor> a;
  for (const auto& al : alphas) a.push_back(qc::composed::group_param(al.abs(), l));
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

}  // namespace qplug_nonuniform::composed
