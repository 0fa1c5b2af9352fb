// ATen-composed reference of the DoReFa activation and binarisation (docs/methods.md#dorefa);
// the tanh weight path's reference is quant_common's (src/composed.cpp there).
#include <dorefa/dorefa_math.hpp>

#include <torch/torch.h>

namespace qplug_dorefa::composed {

namespace qc = qplug_quant_common;

at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n) {
  const double scale = static_cast<double>(n) / clip;
  return qc::composed::round_ste(at::clamp(x, 0.0, clip) * scale) / scale;
}

at::Tensor dorefa_binarize(const at::Tensor& w) {
  at::Tensor e = w.detach().abs().mean();
  at::Tensor y = at::where(w.detach() < 0, -e, e);
  return qc::masked_ste(w, y, at::Tensor());
}

}  // namespace qplug_dorefa::composed
