// ATen-composed reference pieces shared by the quantizer plugins: the reference's
// straight-through round, the per-group broadcast, and the DoReFa tanh weight path
// (dorefa and pact weights). Each method's own reference is plugins/<method>/src/<method>_composed.cpp.
#include <quant_common/kernels.hpp>

#include <torch/torch.h>

namespace qplug_quant_common::composed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RoundSte : public torch::autograd::Function<RoundSte> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& v) { return at::round(v); }
  static variable_list backward(AutogradContext*, variable_list g) { return {g[0]}; }
};

}  // namespace

at::Tensor round_ste(const at::Tensor& v) { return RoundSte::apply(v); }

at::Tensor group_param(const at::Tensor& p, const GroupLayout& l) { return p.reshape({1, l.groups, 1}); }

at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n) {
  const double scale = static_cast<double>(n) / clip;
  at::Tensor t = at::tanh(w);
  at::Tensor u = t / (2 * t.abs().max()) + 0.5;
  return 2 * (round_ste(u * scale) / scale) - 1;
}

}  // namespace qplug_quant_common::composed
