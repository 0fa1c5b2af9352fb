// quant_common/options.hpp - options shared by the quantizer plugins and the
// quantities the reference derives from them at construction (docs/methods.md#the-quantizer-object).
#pragma once

#include <qsdk/error.hpp>
#include <qsdk/quantizer.hpp>
#include <qsdk/schema.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace qplug_quant_common {

/// `half_range`: the sign of the quantized range.
enum class HalfRange {
  automatic,  ///< "auto": unsigned for activations, signed for weights and outputs
  yes,        ///< "true": unsigned [0, s]
  no,         ///< "false": signed [-s, s]
};
/// `grad_type`: the surrogate gradient.
enum class GradType {
  none,       ///< "none": the method's own gradient
  ste,        ///< "STE": straight-through
  triangle,   ///< "Triangle": triangle-shaped sign gradient (XNOR activations)
  ste_scale,  ///< "STE-scale": straight-through with the clip scale (ClampWithScale)
};
/// `grad_scale`: the multiplier of the clip gradient (docs/methods.md#gradient-scale).
enum class GradScale {
  none,           ///< "none": 1
  fan_scale,      ///< "fan-scale": sqrt(fan) * scale
  scale_fan,      ///< "scale-fan": scale / sqrt(fan)
  element_scale,  ///< "element-scale": sqrt(elements) * scale
  scale_element,  ///< "scale-element": scale / sqrt(elements)
};
/// `adaptive`: how the input is normalised before quantization.
enum class Adaptive {
  none,      ///< "none"
  var_mean,  ///< "var-mean": weight standardisation
  mean,      ///< "mean" (LQ-Net)
  var,       ///< "var" (LQ-Net)
  mean_var,  ///< "mean-var" (LQ-Net)
  min,       ///< "min" (LQ-Net)
};

/// The TOML spellings of each enum option (the reference's strings).
inline const qsdk::EnumNames<HalfRange>& half_range_names() {
  static const qsdk::EnumNames<HalfRange> names{
      {"auto", HalfRange::automatic}, {"true", HalfRange::yes}, {"false", HalfRange::no}};
  return names;
}
/// See half_range_names().
inline const qsdk::EnumNames<GradType>& grad_type_names() {
  static const qsdk::EnumNames<GradType> names{{"none", GradType::none},
                                               {"STE", GradType::ste},
                                               {"Triangle", GradType::triangle},
                                               {"STE-scale", GradType::ste_scale}};
  return names;
}
/// See half_range_names().
inline const qsdk::EnumNames<GradScale>& grad_scale_names() {
  static const qsdk::EnumNames<GradScale> names{{"none", GradScale::none},
                                                {"fan-scale", GradScale::fan_scale},
                                                {"scale-fan", GradScale::scale_fan},
                                                {"element-scale", GradScale::element_scale},
                                                {"scale-element", GradScale::scale_element}};
  return names;
}
/// See half_range_names().
inline const qsdk::EnumNames<Adaptive>& adaptive_names() {
  static const qsdk::EnumNames<Adaptive> names{{"none", Adaptive::none},         {"var-mean", Adaptive::var_mean},
                                               {"mean", Adaptive::mean},         {"var", Adaptive::var},
                                               {"mean-var", Adaptive::mean_var}, {"min", Adaptive::min}};
  return names;
}

/// The entries of `names` whose value is in `keep`, in `keep`'s order (a
/// plugin's subset of a shared enum).
template <class E>
qsdk::EnumNames<E> names_of(const qsdk::EnumNames<E>& names, const std::vector<E>& keep) {
  qsdk::EnumNames<E> out;
  for (E k : keep)
    for (const auto& entry : names)
      if (entry.second == k) out.push_back(entry);
  return out;
}

/// Options every quantizer understands (the reference's `<tag>_*` options).
/// Plugins derive their FooOptions from it and bind the fields that apply
/// with add_common_fields(); the defaults are the reference parser's.
struct CommonOptions {
  int64_t bits = 2;             ///< bit width; the number of levels is 2^bits unless `levels` > 0
  int64_t levels = 0;           ///< explicit number of levels (3 = ternary); 0 = 2^bits
  HalfRange half_range = HalfRange::automatic;  ///< auto (activation unsigned, weight/output signed), true, false
  int64_t quant_group = 0;      ///< 0 = default grouping; q > 0: q groups; q < 0: groups = P/|q|
                                ///< (docs/methods.md#groups-and-derived-quantities)
  double boundary = 1.0;        ///< method-specific (MethodMeaning): initial clip (LSQ, PACT), fixed clip
                                ///< (DoReFa), non-uniform slope divisor
  double scale = 0.5;           ///< method-specific (MethodMeaning): grad_scale multiplier (LSQ), LQ-Net
                                ///< threshold mix, non-uniform initial slope
  double correlate = -1.0;      ///< multiplier of max|x| in the warm-up clip estimate (only if > 0)
  GradType grad_type = GradType::none;     ///< none, STE, Triangle, STE-scale
  GradScale grad_scale = GradScale::none;  ///< none, fan-scale, scale-fan, element-scale, scale-element
  int64_t stable = 0;           ///< warm-up: forwards whose counter is <= stable return the input
  Adaptive adaptive = Adaptive::none;  ///< weight normalisation (var-mean; LQ-Net: mean, var, mean-var, min)
  bool independent_norm = false;    ///< standardise weights over the whole layer, not per group
  bool gamma = false;           ///< learnable per-group output multiplier (XNOR++ / wt_gamma)
};

/// Which CommonOptions fields a plugin exposes.
enum CommonField : unsigned {
  kBits = 1u << 0,
  kLevels = 1u << 1,
  kHalfRange = 1u << 2,
  kQuantGroup = 1u << 3,
  kBoundary = 1u << 4,
  kScale = 1u << 5,
  kCorrelate = 1u << 6,
  kGradType = 1u << 7,
  kGradScale = 1u << 8,
  kStable = 1u << 9,
  kAdaptive = 1u << 10,
  kIndependentNorm = 1u << 11,
  kGamma = 1u << 12,
};

/// What `boundary` and `scale` mean to one method. The TOML keys and defaults are
/// shared (the reference's `<tag>_boundary`, `<tag>_scale`), their meaning is not,
/// so each plugin states it; it becomes the option's doc string in the schema
/// (`qhost describe quantizer/<name>`).
struct MethodMeaning {
  std::string boundary;  ///< doc of `boundary`; required when kBoundary is bound
  std::string scale;     ///< doc of `scale`; required when kScale is bound
};

/// Binds the selected CommonOptions fields of `T` (a struct deriving from
/// CommonOptions) into `schema`, in CommonOptions order. `meaning` documents the
/// method-specific `boundary` and `scale`; `adaptive_values` are the accepted
/// `adaptive` values and `grad_types` the accepted `grad_type` values.
/// Throws qsdk::Error(plugin) when `boundary` or `scale` is bound without its meaning.
template <class T>
void add_common_fields(qsdk::Schema<T>& s, unsigned fields, const MethodMeaning& meaning,
                       std::vector<Adaptive> adaptive_values = {Adaptive::none, Adaptive::var_mean},
                       std::vector<GradType> grad_types = {GradType::none, GradType::ste, GradType::ste_scale}) {
  // A generic text would tell `qhost describe` users nothing: each method says what the value does.
  if (((fields & kBoundary) && meaning.boundary.empty()) || ((fields & kScale) && meaning.scale.empty()))
    throw qsdk::Error(qsdk::ErrorCategory::plugin, "add_common_fields",
                      "boundary and scale are bound without a doc string of their meaning",
                      "pass a MethodMeaning with the method's meaning of each bound field");
  if (fields & kBits)
    s.field("bits", &T::bits, "bit width (levels = 2^bits unless `levels` is set)")
        .range(1, 8);
  if (fields & kLevels)
    s.field("levels", &T::levels,
            "explicit number of levels, e.g. 3 for ternary; 0 = 2^bits")
        .range(0, 256);
  if (fields & kHalfRange)
    s.field("half_range", &T::half_range,
            "unsigned range [0, s] (true) or signed [-s, s] (false); auto = unsigned for activations",
            half_range_names());
  if (fields & kQuantGroup)
    s.field("quant_group", &T::quant_group,
            "parameter groups: 0 = default (weights per output channel, activations per layer), "
            "q > 0 = q contiguous groups, q < 0 = groups of |q| leading elements");
  if (fields & kBoundary)
    s.field("boundary", &T::boundary, meaning.boundary)
        .at_least(1e-12);
  if (fields & kScale)
    s.field("scale", &T::scale, meaning.scale);
  if (fields & kCorrelate)
    s.field("correlate", &T::correlate,
            "warm-up: multiply max|x| by this before averaging it into the clip (only if > 0)");
  if (fields & kGradType)
    s.field("grad_type", &T::grad_type, "surrogate gradient", names_of(grad_type_names(), grad_types));
  if (fields & kGradScale)
    s.field("grad_scale", &T::grad_scale,
            "scale of the clip gradient: fan-scale = sqrt(fan)*scale, scale-fan = scale/sqrt(fan), "
            "element-scale = sqrt(elements)*scale, scale-element = scale/sqrt(elements)",
            grad_scale_names());
  if (fields & kStable)
    s.field("stable", &T::stable,
            "warm-up iterations: the first `stable` forwards return the input unquantized")
        .at_least(0);
  if (fields & kAdaptive)
    s.field("adaptive", &T::adaptive, "input normalisation", names_of(adaptive_names(), adaptive_values));
  if (fields & kIndependentNorm)
    s.field("independent_norm", &T::independent_norm,
            "weight standardisation statistics over the whole layer instead of per group");
  if (fields & kGamma)
    s.field("gamma", &T::gamma,
            "learnable per-group multiplier of the quantized weight (XNOR++), init 1");
}

/// What the reference derives at construction (docs/methods.md#the-quantizer-object, docs/golden.md#case-attributes).
struct QuantSetup {
  qsdk::QuantTarget target = qsdk::QuantTarget::activation;
  std::vector<int64_t> shape;  ///< reference shape ([1,C,1,1] / [O,I,k,k])
  int64_t levels = 4;          ///< number of levels L
  int64_t bits = 2;            ///< integer bits
  bool half_range = true;      ///< unsigned range
  int64_t groups = 1;          ///< quant_group after resolution
  int64_t norm_groups = 1;     ///< groups of the weight standardisation
  int64_t fan = 1;             ///< prod(shape[1:])
  int64_t n_elements = 1;      ///< elements per group (times batch*input_size^2 for activations)
  double grad_factor = 1.0;    ///< clip-gradient factor from grad_scale (before the int() rule)
  std::string place;           ///< module path, for error messages
};

/// Resolves the common options against the context. Throws qsdk::Error(config)
/// on a quant_group that does not divide the leading elements.
QuantSetup make_setup(const CommonOptions& o, const qsdk::QuantizerContext& ctx);

/// The reference's GradientScale rule (docs/methods.md#gradient-scale): a factor whose integer part
/// is 1 (1 <= g < 2) is ignored, any other factor is applied.
double effective_gradient_scale(double g);

/// Throws qsdk::Error(config) about `key` with the quantizer's module path.
[[noreturn]] void option_error(const QuantSetup& setup, const std::string& key, const std::string& message,
                               const std::string& hint = "");

}  // namespace qplug_quant_common
