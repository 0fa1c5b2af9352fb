// PACT: parameterized clipping activation (Choi et al., 2018) as the reference
// QTool implements it (docs/methods.md#pact); weights use the DoReFa tanh path.
#include <pact/pact_math.hpp>
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

namespace qplug_pact {

namespace qc = qplug_quant_common;

/// Options of the `pact` quantizer.
///
/// Example (TOML): `[quant.activation] type = "pact"  bits = 2  boundary = 8.0`
struct PactOptions : qc::CommonOptions {
  /// The option schema.
  static qsdk::Schema<PactOptions> schema() {
    qsdk::Schema<PactOptions> s("PACT: activations clipped at a learned alpha; weights by the DoReFa tanh path");
    qc::add_common_fields(s, qc::kBits | qc::kLevels | qc::kQuantGroup | qc::kBoundary | qc::kCorrelate |
                                 qc::kStable | qc::kAdaptive | qc::kIndependentNorm | qc::kGamma,
                          {"activations: initial value of the learned clip alpha (clip_val); weights: fixed clip c "
                           "of the DoReFa tanh path (steps of c/n)",
                           ""});
    return s;
  }
};

/// PACT fake quantizer; activations own the learnable `clip_val` (alpha, shape [1]).
class PactQuantizerImpl : public qc::QuantizerBase, public qsdk::ZeroPaddingAware, public qsdk::Exportable {
 public:
  PactQuantizerImpl(const PactOptions& o, const qsdk::QuantizerContext& ctx) : QuantizerBase(o, ctx) {
    require_target({qsdk::QuantTarget::activation, qsdk::QuantTarget::weight}, "pact");
    if (setup_.target == qsdk::QuantTarget::activation) {
      if (setup_.groups != 1)
        qc::option_error(setup_, "quant_group", "PACT learns one clip per layer",
                         "leave quant_group at 0 or 1 for PACT activations");
      clip_val_ = register_parameter("clip_val", torch::full({1}, static_cast<float>(o.boundary)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const bool warmup = advance_counter();
    at::Tensor xn = standardize(x);
    if (warmup) {
      if (clip_val_.defined()) warmup_clip(clip_val_, xn);
      return xn;
    }
    const int64_t n = setup_.levels - 1;
    if (setup_.target == qsdk::QuantTarget::activation) return pact_activation(xn.contiguous(), clip_val_, n);
    return apply_gamma(qc::dorefa_weight(xn.contiguous(), common_.boundary, n));
  }

  /// Weights: the DoReFa tanh path (QuantizerBase::dorefa_weight_export).
  qsdk::WeightExport export_weight(const torch::Tensor& w) const override {
    if (setup_.target != qsdk::QuantTarget::weight) refuse_export("pact", "export_weight on an activation quantizer");
    require_export_ready("pact");
    torch::NoGradGuard no_grad;
    return dorefa_weight_export(standardize(w).contiguous(), common_.boundary, setup_.levels - 1, "pact");
  }

  /// round(clamp(x, 0, alpha) n / alpha) alpha / n: step alpha / n, codes [0, n].
  qsdk::ActivationExport export_activation() const override {
    if (!clip_val_.defined()) refuse_export("pact", "export_activation on a weight quantizer");
    require_export_ready("pact");
    const int64_t n = setup_.levels - 1;
    return activation_export(clip_val_.detach().reshape({1}) / static_cast<double>(n), 0, 0, n, "pact");
  }

  /// With alpha > 0, 0 stays 0 and adds nothing to alpha's gradient (only
  /// inputs >= alpha do), and the warm-up's max |x| does not see zeros.
  bool commutes_with_zero_padding() const override {
    if (setup_.target != qsdk::QuantTarget::activation) return false;
    // On a GPU this would read alpha every forward: pad first there instead.
    return qc::all_on_cpu(clip_val_, [](float a) { return a > 0.f; });
  }

  torch::Tensor levels() const override {
    if (!clip_val_.defined()) return {};
    const int64_t n = setup_.levels - 1;
    return torch::arange(0, n + 1, torch::kFloat).reshape({1, -1}) * (clip_val_.detach().reshape({1, 1}) / n);
  }

 private:
  at::Tensor clip_val_;
};

}  // namespace qplug_pact

QSDK_PLUGIN("pact", "0.1.0", "PACT learned-clip activation quantization (DoReFa weights)") {
  registrar.add_quantizer<qplug_pact::PactQuantizerImpl, qplug_pact::PactOptions>("pact");
}
