// XNOR-Net / XNOR++ / Bi-Real binarisation (Rastegari et al. 2016; Bulat &
// Tzimiropoulos 2019; Liu et al. 2018) with the reference QTool's options, in
// its intended form (docs/methods.md#xnor-binarisation, docs/methods.md#reference-bugs-and-what-qtool-does item 1): it
// always binarises.
#include <quant_common/quantizer_base.hpp>
#include <xnor/xnor_math.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

namespace qplug_xnor {

namespace qc = qplug_quant_common;

/// Options of the `xnor` quantizer.
///
/// Example (TOML): `[quant.activation] type = "xnor"  bits = 1  grad_type = "Triangle"`
/// Activation scale of XNOR: none (pure sign), channel (mean|x| over C),
/// resolution (mean|x| over H*W).
enum class XnorScale { none, channel, resolution };

struct XnorOptions : qc::CommonOptions {
  /// Activation scale: none (pure sign), channel (mean|x| over C), resolution (mean|x| over H*W).
  XnorScale custom = XnorScale::none;
  XnorOptions() { bits = 1; }
  /// The option schema.
  static qsdk::Schema<XnorOptions> schema() {
    qsdk::Schema<XnorOptions> s("XNOR-Net binarisation: sign times mean|x| (XNOR++: times a learned gamma)");
    qc::add_common_fields(s,
                          qc::kBits | qc::kLevels | qc::kQuantGroup | qc::kGradType | qc::kStable | qc::kAdaptive |
                              qc::kIndependentNorm | qc::kGamma,
                          {}, {qc::Adaptive::none, qc::Adaptive::var_mean},
                          {qc::GradType::none, qc::GradType::ste, qc::GradType::triangle, qc::GradType::ste_scale});
    s.field("custom", &XnorOptions::custom, "activation scale: none, channel or resolution",
            {{"none", XnorScale::none}, {"channel", XnorScale::channel}, {"resolution", XnorScale::resolution}});
    return s;
  }
};

/// XNOR binariser. The counter `iteration` only runs when `stable` > 0 (warm-up);
/// with stable = 0 it is left untouched and every forward binarises.
class XnorQuantizerImpl : public qc::QuantizerBase, public qsdk::Exportable, public qsdk::LevelExportable {
 public:
  XnorQuantizerImpl(const XnorOptions& o, const qsdk::QuantizerContext& ctx) : QuantizerBase(o, ctx), custom_(o.custom) {
    require_target({qsdk::QuantTarget::activation, qsdk::QuantTarget::weight}, "xnor");
    if (setup_.levels != 2)
      qc::option_error(setup_, "bits", "XNOR binarises: it needs 2 levels, got " + std::to_string(setup_.levels),
                       "set bits = 1 and levels = 0");
    if (custom_ != XnorScale::none && setup_.target != qsdk::QuantTarget::activation)
      qc::option_error(setup_, "custom", "custom scaling applies to activations only");
    if (o.grad_type == qc::GradType::triangle && setup_.target == qsdk::QuantTarget::weight)
      qc::option_error(setup_, "grad_type", "Triangle applies to activations only", "use STE or none for weights");
    if (o.grad_type == qc::GradType::ste) grad_ = SignGrad::ste;
    if (o.grad_type == qc::GradType::triangle) grad_ = SignGrad::triangle;
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    at::Tensor xn = standardize(x).contiguous();
    if (common_.stable > 0 && advance_counter()) return xn;
    if (setup_.target == qsdk::QuantTarget::weight) {
      const qc::GroupLayout layout = layout_for(xn, setup_.groups);
      at::Tensor e = xn.detach().reshape({setup_.groups, -1}).abs().mean(1);
      return apply_gamma(xnor_binarize(xn, e, grad_, layout));
    }
    if (custom_ == XnorScale::none)
      return xnor_binarize(xn, at::Tensor(), grad_, qc::GroupLayout::whole(xn.numel()));
    // Per-sample scales that do not follow the parameter groups: composed.
    at::Tensor xd = xn.detach();
    at::Tensor e = custom_ == XnorScale::channel ? xd.abs().mean({1}, true) : xd.abs().mean({2, 3}, true);
    at::Tensor y = at::where(xd < 0, -e, e);
    at::Tensor mask;
    if (grad_ == SignGrad::ste) mask = (xd > -1) & (xd < 1);
    if (grad_ == SignGrad::triangle) mask = at::where(xd.abs() < 1, 2 - 2 * xd.abs(), at::zeros_like(xd));
    return qc::masked_ste(xn, y, mask);
  }

  /// sign(w) * mean|w| per group (times gamma): codes +-1 (sign(0) = +1),
  /// step mean|w| of the group.
  qsdk::WeightExport export_weight(const torch::Tensor& w) const override {
    if (setup_.target != qsdk::QuantTarget::weight) refuse_export("xnor", "export_weight on an activation quantizer");
    if (common_.stable > 0) require_export_ready("xnor");
    torch::NoGradGuard no_grad;
    at::Tensor xn = standardize(w).contiguous();
    at::Tensor e = xn.reshape({setup_.groups, -1}).abs().mean(1);
    at::Tensor y = apply_gamma(xnor_binarize(xn, e, grad_, layout_for(xn, setup_.groups)));
    return weight_export(y, e, "xnor");
  }

  /// Refused: sign(x) sends every positive value, however small, to +1, and
  /// QuantizeLinear rounds x / scale, so no scale and zero point give it.
  /// Activations without a per-sample scale use the threshold form instead.
  qsdk::ActivationExport export_activation() const override {
    refuse_export("xnor",
                  "binarising to sign(x)" +
                      std::string(custom_ == XnorScale::none ? "" : " times a per-sample mean|x|") +
                      " is not a rounding of x / scale, so QuantizeLinear cannot express it",
                  custom_ == XnorScale::none
                      ? "qhost export writes it as a comparison (qsdk::LevelExportable)"
                      : "export XNOR weights with full-precision or uniform (lsq, pact, dorefa) activations");
  }

  bool uses_levels() const override { return setup_.target == qsdk::QuantTarget::activation; }

  qsdk::LevelWeightExport export_weight_levels(const torch::Tensor&) const override {
    refuse_export("xnor", "its weights use the affine form (export_weight)");
  }

  /// custom = none: forward is `x < 0 ? -1 : +1` (sign(0) = +1), i.e. one
  /// threshold 0 that a value equal to it passes (upper_at_ties), levels -1, +1.
  /// The channel / resolution scales are means of |x| over each sample, which
  /// no constant table gives: refused.
  qsdk::LevelActivationExport export_activation_levels() const override {
    if (setup_.target != qsdk::QuantTarget::activation)
      refuse_export("xnor", "export_activation_levels on a weight quantizer");
    if (common_.stable > 0) require_export_ready("xnor");
    if (custom_ != XnorScale::none)
      refuse_export("xnor",
                    std::string("custom = ") + (custom_ == XnorScale::channel ? "channel" : "resolution") +
                        " scales sign(x) by the mean |x| of each sample, which no constant level table gives",
                    "train the activations with custom = none to deploy them");
    const int64_t g = setup_.groups;
    return level_activation_export(torch::zeros({g, 1}), torch::tensor({-1.f, 1.f}).reshape({1, 2}).expand({g, 2}),
                                   true, "xnor");
  }

 private:
  XnorScale custom_;
  SignGrad grad_ = SignGrad::identity;
};

}  // namespace qplug_xnor

QSDK_PLUGIN("xnor", "0.1.0", "XNOR-Net / XNOR++ / Bi-Real binarisation of activations and weights") {
  registrar.add_quantizer<qplug_xnor::XnorQuantizerImpl, qplug_xnor::XnorOptions>("xnor");
}
