// ATen-composed reference of the XNOR binarisation (docs/methods.md#xnor-binarisation).
#include <xnor/xnor_math.hpp>

#include <torch/torch.h>

namespace qplug_xnor::composed {

namespace qc = qplug_quant_common;

at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad, const qc::GroupLayout& l) {
  at::Tensor xd = x.detach();
  at::Tensor sign = at::where(xd < 0, at::full({}, -1.0, xd.options()), at::full({}, 1.0, xd.options()));
  at::Tensor y = sign;
  if (group_scale.defined())
    y = (sign.reshape(l.grouped_view(x.numel())) * qc::composed::group_param(group_scale.detach(), l)).view(x.sizes());
  at::Tensor mask;
  if (grad == SignGrad::ste) mask = (xd > -1) & (xd < 1);
  if (grad == SignGrad::triangle) mask = at::where(xd.abs() < 1, 2 - 2 * xd.abs(), at::zeros_like(xd));
  return qc::masked_ste(x, y, mask);
}

}  // namespace qplug_xnor::composed
