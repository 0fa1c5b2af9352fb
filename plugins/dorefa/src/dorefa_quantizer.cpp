// DoReFa-Net quantization (Zhou et al., 2016) as the reference QTool implements
// it (docs/methods.md#dorefa): clamp-round activations, tanh-normalised weights, optional
// weight binarisation (the reference's `wt_bin`).
#include <dorefa/dorefa_math.hpp>
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

namespace qplug_dorefa {

namespace qc = qplug_quant_common;

/// Options of the `dorefa` quantizer.
///
/// Example (TOML): `[quant.weight] type = "dorefa"  bits = 1  binarize = true`
struct DorefaOptions : qc::CommonOptions {
  /// Weights with 2 levels: sign(w) * mean|w| instead of the tanh path (`wt_bin`).
  bool binarize = false;
  /// The option schema.
  static qsdk::Schema<DorefaOptions> schema() {
    qsdk::Schema<DorefaOptions> s("DoReFa-Net: fixed-clip activations, tanh-normalised weights");
    qc::add_common_fields(s, qc::kBits | qc::kLevels | qc::kQuantGroup | qc::kBoundary | qc::kStable |
                                 qc::kAdaptive | qc::kIndependentNorm | qc::kGamma,
                          {"fixed clip c (not learned): activations are clamped to [0, c] and rounded in steps of "
                           "c/n; weights round tanh(w)/(2 max|tanh w|) + 0.5 in steps of c/n",
                           ""});
    s.field("binarize", &DorefaOptions::binarize,
            "weights with 2 levels: mean|w| * sign(w) with identity gradient (reference keyword wt_bin)");
    return s;
  }
};

/// DoReFa fake quantizer; no learnable parameters (besides optional gamma).
class DorefaQuantizerImpl : public qc::QuantizerBase, public qsdk::ZeroPaddingAware, public qsdk::Exportable {
 public:
  DorefaQuantizerImpl(const DorefaOptions& o, const qsdk::QuantizerContext& ctx)
      : QuantizerBase(o, ctx), binarize_(o.binarize) {
    if (binarize_ && (setup_.target != qsdk::QuantTarget::weight || setup_.levels != 2))
      qc::option_error(setup_, "binarize", "binarize applies to weight quantizers with 2 levels",
                       "set bits = 1 (or levels = 2) on a weight quantizer, or drop binarize");
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const bool warmup = advance_counter();
    at::Tensor xn = standardize(x);
    if (warmup) return xn;
    const int64_t n = setup_.levels - 1;
    at::Tensor y;
    if (setup_.target != qsdk::QuantTarget::weight) {
      y = dorefa_activation(xn.contiguous(), common_.boundary, n);
    } else if (binarize_) {
      y = dorefa_binarize(xn.contiguous());
    } else {
      y = qc::dorefa_weight(xn.contiguous(), common_.boundary, n);
    }
    return apply_gamma(y);
  }

  /// Tanh path: levels 2k c / n - 1, k = 0..floor(n / c): integer multiples
  /// 2k - n/c of the step c / n when n / c is an integer (boundary = 1: the
  /// codes 2k - n). Binarised: +-mean|w|, codes +-1.
  qsdk::WeightExport export_weight(const torch::Tensor& w) const override {
    if (setup_.target != qsdk::QuantTarget::weight) refuse_export("dorefa", "export_weight on a non-weight quantizer");
    require_export_ready("dorefa");
    torch::NoGradGuard no_grad;
    at::Tensor xn = standardize(w).contiguous();
    if (binarize_) return weight_export(apply_gamma(dorefa_binarize(xn)), xn.abs().mean().reshape({1}), "dorefa");
    return dorefa_weight_export(xn, common_.boundary, setup_.levels - 1, "dorefa");
  }

  /// round(clamp(x, 0, c) n / c) c / n: step c / n, codes [0, n].
  qsdk::ActivationExport export_activation() const override {
    if (setup_.target == qsdk::QuantTarget::weight) refuse_export("dorefa", "export_activation on a weight quantizer");
    require_export_ready("dorefa");
    const int64_t n = setup_.levels - 1;
    return activation_export(torch::full({1}, common_.boundary / static_cast<double>(n), torch::kDouble), 0, 0, n,
                             "dorefa");
  }

  /// Activations: clamp(0, 0, c) rounds to 0 for any positive clip, and
  /// nothing learnable or counted depends on the input.
  bool commutes_with_zero_padding() const override {
    return setup_.target == qsdk::QuantTarget::activation && common_.boundary > 0;
  }

  torch::Tensor levels() const override {
    const int64_t n = setup_.levels - 1;
    at::Tensor k = torch::arange(0, n + 1, torch::kFloat).reshape({1, -1});
    if (setup_.target != qsdk::QuantTarget::weight) return k * (common_.boundary / n);
    if (binarize_) return {};  // data dependent
    // 2*round(u*n/c)/(n/c) - 1 over u in [0, 1].
    at::Tensor steps = torch::arange(0, static_cast<int64_t>(std::floor(n / common_.boundary)) + 1, torch::kFloat);
    return (2 * steps / (n / common_.boundary) - 1).reshape({1, -1});
  }

 private:
  bool binarize_;
};

}  // namespace qplug_dorefa

QSDK_PLUGIN("dorefa", "0.1.0", "DoReFa-Net quantization of activations and weights") {
  registrar.add_quantizer<qplug_dorefa::DorefaQuantizerImpl, qplug_dorefa::DorefaOptions>("dorefa");
}
