// Non-uniform quantization with learned interval widths (FATNN-style), as the
// reference QTool implements it (docs/methods.md#non-uniform-fatnn). Outputs are integer levels.
#include <nonuniform/nonuniform_math.hpp>
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

#include <cstring>
#include <limits>

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
                                 qc::kGamma,
                          {"activations: divisor of the initial slopes (alpha_i = scale / boundary) and initial "
                           "value of the warm-up clip_val; unused by weights",
                           "initial slope: alpha_i = scale / boundary (activations), alpha_i = scale (weights)"});
    s.field("closed_form", &NonUniformOptions::closed_form,
            "activations: output levels times a scalar refit as <levels,x>/<levels,levels> in training");
    s.field("custom_update", &NonUniformOptions::custom_update,
            "closed_form: the scalar is the running mean of the per-step fits");
    return s;
  }
};

/// Non-uniform fake quantizer; parameters alpha0..alpha{L-2}; activations also keep
/// the warm-up `clip_val` buffer and, with closed_form, `basis` and `auxil`.
class NonUniformQuantizerImpl : public qc::QuantizerBase, public qsdk::Exportable, public qsdk::LevelExportable {
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
    at::Tensor y = nonuniform_quantize(xn, alphas_, half_range_, layout_for(xn, setup_.groups));
    if (closed_form_) y = closed_form(xn, y);
    if (in_warmup()) {
      if (clip_val_.defined()) warmup_clip(clip_val_, xn);
      return xn;
    }
    return apply_gamma(y);
  }

  /// Ternary weights are the codes -1, 0, 1 with step 1 (times gamma): only
  /// the thresholds are learned, and a constant weight needs none.
  qsdk::WeightExport export_weight(const torch::Tensor& w) const override {
    if (setup_.target != qsdk::QuantTarget::weight)
      refuse_export("nonuniform", "export_weight on an activation quantizer");
    require_export_ready("nonuniform");
    torch::NoGradGuard no_grad;
    at::Tensor xn = standardize(w).contiguous();
    at::Tensor y = apply_gamma(nonuniform_quantize(xn, alphas_, half_range_, layout_for(xn, setup_.groups)));
    return weight_export(y, torch::ones({1}), "nonuniform");
  }

  /// Refused: the learned thresholds are no rounding points of x / scale.
  /// Activations use the threshold form (export_activation_levels).
  qsdk::ActivationExport export_activation() const override {
    refuse_export("nonuniform",
                  "its learned thresholds are not the rounding points of x / scale, so QuantizeLinear cannot "
                  "express them",
                  "qhost export writes them as comparisons and a level table (qsdk::LevelExportable)");
  }

  bool uses_levels() const override { return setup_.target != qsdk::QuantTarget::weight; }

  qsdk::LevelWeightExport export_weight_levels(const torch::Tensor&) const override {
    refuse_export("nonuniform", "its weights use the affine form (export_weight)");
  }

  /// Level k (0..L-1, or -1, 0, 1 signed; times the closed-form scalar) above
  /// the largest float x at which forward is still below it. Forward is a sum
  /// of rounded clamps of positive slopes times shifted x, so it does not
  /// decrease in x, and its thresholds are found exactly by bisection over the
  /// ordered float32 values, evaluating the quantizer's own kernel: the form
  /// reproduces forward's float arithmetic and tie-breaking at every finite input.
  qsdk::LevelActivationExport export_activation_levels() const override {
    if (setup_.target == qsdk::QuantTarget::weight)
      refuse_export("nonuniform", "export_activation_levels on a weight quantizer");
    require_export_ready("nonuniform");
    torch::NoGradGuard no_grad;
    for (const auto& a : alphas_)
      if (!(a.detach().abs() > 0).all().item<bool>() || !torch::isfinite(a.detach()).all().item<bool>())
        refuse_export("nonuniform", "a slope alpha is zero or not finite, so forward does not step at all",
                      "check the checkpoint's alpha values");
    const int64_t L = setup_.levels, G = setup_.groups;
    std::vector<float> values;  // forward's integer levels, ascending
    for (int64_t k = 0; k < L; ++k) values.push_back(static_cast<float>(half_range_ ? k : k - 1));
    // One probe per (threshold, group): [L - 1, G, 1, 1], group = channel.
    const int64_t P = (L - 1) * G;
    std::vector<int64_t> lo(P, key(-std::numeric_limits<float>::max())), hi(P, key(std::numeric_limits<float>::max()));
    const auto below = [&](const std::vector<int64_t>& keys) {
      std::vector<float> x(P);
      for (int64_t i = 0; i < P; ++i) x[i] = from_key(keys[i]);
      at::Tensor probe = torch::tensor(x).reshape({L - 1, G, 1, 1});
      at::Tensor y = nonuniform_quantize(probe, alphas_, half_range_, qc::GroupLayout::channel_blocks(probe, G))
                         .reshape({-1})
                         .contiguous();
      std::vector<bool> r(P);
      for (int64_t i = 0; i < P; ++i) r[i] = y[i].item<float>() < values[i / G + 1];
      return r;
    };
    const std::vector<bool> low_below = below(lo), high_below = below(hi);
    std::vector<float> thr(P);
    std::vector<bool> open(P);
    for (int64_t i = 0; i < P; ++i) open[i] = low_below[i] && !high_below[i];
    for (int step = 0; step < 40; ++step) {
      std::vector<int64_t> mid(P);
      bool any = false;
      for (int64_t i = 0; i < P; ++i) {
        mid[i] = lo[i] + (hi[i] - lo[i]) / 2;
        any = any || (open[i] && hi[i] - lo[i] > 1);
      }
      if (!any) break;
      const std::vector<bool> m = below(mid);
      for (int64_t i = 0; i < P; ++i)
        if (open[i] && hi[i] - lo[i] > 1) (m[i] ? lo[i] : hi[i]) = mid[i];
    }
    const float inf = std::numeric_limits<float>::infinity();
    // A level every finite input reaches sits above -inf; one none reaches above +inf.
    for (int64_t i = 0; i < P; ++i) thr[i] = !low_below[i] ? -inf : high_below[i] ? inf : from_key(lo[i]);
    at::Tensor thresholds = torch::tensor(thr).reshape({L - 1, G}).t();
    at::Tensor levels = torch::tensor(values).reshape({1, L});
    if (closed_form_) levels = levels * basis_.detach();  // forward's levels * basis_
    return level_activation_export(thresholds, levels.expand({G, L}), false, "nonuniform");
  }

 private:
  /// float32 values as integers in the same order (-0 and +0 both 0), for bisection.
  static int64_t key(float v) {
    int32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b >= 0 ? int64_t{b} : -int64_t{b & 0x7fffffff};
  }
  static float from_key(int64_t k) {
    const int32_t b = k >= 0 ? static_cast<int32_t>(k) : static_cast<int32_t>(static_cast<uint32_t>(-k) | 0x80000000u);
    float v;
    std::memcpy(&v, &b, sizeof v);
    return v;
  }

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
