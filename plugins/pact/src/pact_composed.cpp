// ATen-composed reference of the PACT activation (docs/methods.md#pact).
#include <pact/pact_math.hpp>

#include <torch/torch.h>

namespace qplug_pact::composed {

at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n) {
  at::Tensor v = at::clamp_min(x, 0.0);  // inclusive at 0, unlike relu's backward
  v = at::where(v < alpha, v, alpha);
  at::Tensor scale = static_cast<double>(n) / alpha.detach();
  return qplug_quant_common::composed::round_ste(v * scale) / scale;
}

}  // namespace qplug_pact::composed
