// LSQ: learned step-size quantization (Esser et al., ICLR 2020) as the reference
// QTool implements it (docs/methods.md#lsq).
#include <lsq/lsq_math.hpp>
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

#include <cmath>

namespace qplug_lsq {

namespace qc = qplug_quant_common;

/// Options of the `lsq` quantizer.
///
/// Example (TOML): `[quant.weight] type = "lsq"  bits = 2  adaptive = "var-mean"  quant_group = 1`
struct LsqOptions : qc::CommonOptions {
  /// The option schema (every field is a CommonOptions field).
  static qsdk::Schema<LsqOptions> schema() {
    qsdk::Schema<LsqOptions> s("Learned step-size quantization (LSQ): uniform levels on [0, s] or [-s, s] with a learned clip s");
    qc::add_common_fields(s,
                          qc::kBits | qc::kLevels | qc::kHalfRange | qc::kQuantGroup | qc::kBoundary | qc::kScale |
                              qc::kCorrelate | qc::kGradType | qc::kGradScale | qc::kStable | qc::kAdaptive |
                              qc::kIndependentNorm | qc::kGamma,
                          {"initial value of the learned clip s (clip_val); a warm-up (stable > 0) replaces it by the "
                           "running mean of max|x|",
                           "multiplier in the grad_scale formulas (fan-scale: sqrt(fan)*scale, scale-fan: "
                           "scale/sqrt(fan), element-scale: sqrt(elements)*scale, scale-element: "
                           "scale/sqrt(elements)); unused with grad_scale = none"},
                          {qc::Adaptive::none, qc::Adaptive::var_mean}, {qc::GradType::none, qc::GradType::ste_scale});
    return s;
  }
};

/// LSQ fake quantizer; parameter `clip_val` (one per group), buffers `iteration`, `level_num`.
class LsqQuantizerImpl : public qc::QuantizerBase, public qsdk::ZeroPaddingAware, public qsdk::Exportable {
 public:
  LsqQuantizerImpl(const LsqOptions& o, const qsdk::QuantizerContext& ctx) : QuantizerBase(o, ctx) {
    clip_val_ = register_parameter("clip_val", torch::full(group_param_shape(), static_cast<float>(o.boundary)));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const bool warmup = advance_counter();
    at::Tensor xn = standardize(x);
    if (warmup) {
      warmup_clip(clip_val_, xn);
      return xn;
    }
    return apply_gamma(lsq_quantize(xn.contiguous(), clip_val_, args(xn)));
  }

  /// Levels k * s / n (unsigned) or (2k - n) * s / n (signed), k = 0..n: the
  /// codes are k or 2k - n with the step s / n (times gamma), per group.
  qsdk::WeightExport export_weight(const torch::Tensor& w) const override {
    require_export_ready("lsq");
    torch::NoGradGuard no_grad;
    at::Tensor xn = standardize(w).contiguous();
    at::Tensor y = apply_gamma(lsq_quantize(xn, clip_val_, args(xn)));
    return weight_export(y, clip_val_.detach().abs().reshape({-1}) / level_steps(), "lsq");
  }

  /// Unsigned: step s / n, codes [0, n]. Signed: levels (2k - n) s / n are the
  /// integers k - n/2 times 2s/n when n is even (an odd number of levels);
  /// with n odd there is no level at 0, so no integer zero point.
  qsdk::ActivationExport export_activation() const override {
    require_export_ready("lsq");
    const double n = level_steps();
    if (n < 1 || n != std::round(n)) refuse_export("lsq", "level_num - 1 = " + std::to_string(n) + " is not a step count");
    const auto steps = static_cast<int64_t>(n);
    at::Tensor s = clip_val_.detach().abs().reshape({-1});
    if (setup_.half_range) return activation_export(s / n, 0, 0, steps, "lsq");
    if (steps % 2 != 0)
      refuse_export("lsq",
                    "a signed range with " + std::to_string(steps + 1) +
                        " levels has no level at 0, and QuantizeLinear needs an integer zero point",
                    "use half_range = true, or an odd number of levels (e.g. levels = 3)");
    return activation_export(s * (2.0 / n), 0, -steps / 2, steps / 2, "lsq");
  }

  /// On [0, s] with s != 0, 0 quantizes to 0 and adds nothing to the clip
  /// gradient (its term is round(0) / n - 0 = 0), and the warm-up's max |x| does
  /// not see zeros. STE-scale counts the elements inside the range and var-mean
  /// standardises, so padding changes those; full range maps 0 to a level +-s/n.
  /// Off the CPU it answers false (both orders are exact; this one needs no read).
  bool commutes_with_zero_padding() const override {
    if (!setup_.half_range || common_.grad_type == qc::GradType::ste_scale ||
        common_.adaptive == qc::Adaptive::var_mean)
      return false;
    // On a GPU this would read the clip every forward: pad first there instead.
    return qc::all_on_cpu(clip_val_, [](float c) { return c != 0.f; });
  }

  torch::Tensor levels() const override {
    const double n = level_steps();
    at::Tensor s = clip_val_.detach().abs().reshape({-1, 1});
    at::Tensor k = torch::arange(0, static_cast<int64_t>(n) + 1, torch::kFloat).reshape({1, -1}) / n;
    return setup_.half_range ? s * k : s * (2 * k - 1);
  }

 private:
  LsqArgs args(const at::Tensor& xn) const {
    LsqArgs a;
    a.n = level_steps();
    a.half_range = setup_.half_range;
    a.grad_factor = setup_.grad_factor;
    a.ste_scale = common_.grad_type == qc::GradType::ste_scale;
    a.layout = layout_for(xn, setup_.groups);
    return a;
  }

  at::Tensor clip_val_;
};

}  // namespace qplug_lsq

QSDK_PLUGIN("lsq", "0.1.0", "Learned step-size quantization (LSQ) of weights, activations and outputs") {
  registrar.add_quantizer<qplug_lsq::LsqQuantizerImpl, qplug_lsq::LsqOptions>("lsq");
}
