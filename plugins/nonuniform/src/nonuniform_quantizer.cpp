// Non-uniform quantization with learned interval widths (FATNN-style), as the
// reference QTool implements it (docs/methods.md#non-uniform-fatnn). Outputs are integer levels.
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

namespace qplug_nonuniform {

namespace qc = qplug_quant_common;

/// Options of the `nonuniform` quantizer.
///
/// Example (TOML): `[quant.activation] type = "nonuniform"  bits = 2  scale = 3.0  boundary = 1.0`
struct NonUniformOptions : qc::CommonOptions {
  /// Activations: scale the integer levels by a least-squares fitted scalar (training refits it).
  bool closed_form = false;
  /// closed_form: keep the running mean of the fitted scalars instead of the latest one.
  bool custom_update = false;
  /// The option schema.
  static qsdk::Schema<NonUniformOptions> schema() {
    qsdk::Schema<NonUniformOptions> s(
        "Non-uniform quantization: integer levels with learned, independent interval widths");
    qc::add_common_fields(s, qc::kBits | qc::kLevels | qc::kHalfRange | qc::kQuantGroup | qc::kBoundary |
                                 qc::kScale | qc::kCorrelate | qc::kStable | qc::kAdaptive | qc::kIndependentNorm |
                                 qc::kGamma);
    s.field("closed_form", &NonUniformOptions::closed_form,
            "activations: output levels times a scalar refit as <levels,x>/<levels,levels> in training");
    s.field("custom_update", &NonUniformOptions::custom_update,
            "closed_form: the scalar is the running mean of the per-step fits");
    return s;
  }
};

/// Non-uniform fake quantizer; parameters alpha0..alpha{L-2}; activations also keep
/// the warm-up `clip_val` buffer and, with closed_form, `basis` and `auxil`.
class NonUniformQuantizerImpl : public qc::QuantizerBase {
 public:
  NonUniformQuantizerImpl(const NonUniformOptions& o, const qsdk::QuantizerContext& ctx)
      : QuantizerBase(o, ctx), closed_form_(o.closed_form), custom_update_(o.custom_update) {
    require_target({qsdk::QuantTarget::activation, qsdk::QuantTarget::weight}, "nonuniform");
    const int64_t L = setup_.levels;
    const auto shape = group_param_shape();
    if (setup_.target == qsdk::QuantTarget::weight) {
      if (L != 3)
        qc::option_error(setup_, "levels", "non-uniform weights are ternary only (got " + std::to_string(L) + " levels)",
                         "set levels = 3");
      if (closed_form_) qc::option_error(setup_, "closed_form", "closed_form applies to activations only");
      for (int64_t i = 0; i < 2; ++i)
        alphas_.push_back(register_parameter("alpha" + std::to_string(i), torch::full(shape, static_cast<float>(o.scale))));
      half_range_ = false;
      return;
    }
    if (L > 4) qc::option_error(setup_, "levels", "non-uniform activations support at most 4 levels", "use bits <= 2");
    half_range_ = setup_.half_range;
    if (!half_range_ && L != 3)
      qc::option_error(setup_, "half_range", "the signed non-uniform form needs exactly 3 levels",
                       "set levels = 3 or half_range = true");
    const float init = static_cast<float>(o.scale / o.boundary);
    for (int64_t i = 0; i < L - 1; ++i)
      alphas_.push_back(register_parameter("alpha" + std::to_string(i), torch::full(shape, init)));
    clip_val_ = register_buffer("clip_val", torch::full(shape, static_cast<float>(o.boundary)));
    if (closed_form_) {
      if (setup_.groups != 1)
        qc::option_error(setup_, "closed_form", "closed_form needs one group", "set quant_group = 1");
      basis_ = register_buffer("basis", torch::ones({1}));
      auxil_ = register_buffer("auxil", torch::zeros({1}));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    advance_counter();
    at::Tensor xn = standardize(x).contiguous();
    at::Tensor y = qc::nonuniform_quantize(xn, alphas_, half_range_, layout_for(xn, setup_.groups));
    if (closed_form_) y = closed_form(xn, y);
    if (in_warmup()) {
      if (clip_val_.defined()) warmup_clip(clip_val_, xn);
      return xn;
    }
    return apply_gamma(y);
  }

 private:
  /// Refits (training) and applies the scalar basis (docs/methods.md#non-uniform-fatnn closed_form).
  at::Tensor closed_form(const at::Tensor& x, const at::Tensor& levels) {
    if (is_training()) {
      torch::NoGradGuard no_grad;
      at::Tensor l = levels.detach();
      at::Tensor xd = x.detach();
      at::Tensor den = (l * l).sum();
      at::Tensor fit = den.item<double>() != 0.0 ? (l * xd).sum() / den : xd.mean();
      auxil_.copy_(fit.reshape({1}));
      if (custom_update_) {
        basis_.copy_((basis_ * iteration_ + auxil_) / (iteration_ + 1));
      } else {
        basis_.copy_(auxil_);
      }
      iteration_.add_(1);
    }
    return levels * basis_;
  }

  bool closed_form_;
  bool custom_update_;
  bool half_range_ = true;
  std::vector<at::Tensor> alphas_;
  at::Tensor clip_val_, basis_, auxil_;
};

}  // namespace qplug_nonuniform

QSDK_PLUGIN("nonuniform", "0.1.0", "Non-uniform quantization with learned interval widths (FATNN-style)") {
  registrar.add_quantizer<qplug_nonuniform::NonUniformQuantizerImpl, qplug_nonuniform::NonUniformOptions>(
      "nonuniform");
}
