// Construction-time derivations of the reference quantizer (docs/methods.md#the-quantizer-object).
#include <quant_common/options.hpp>

#include <qsdk/error.hpp>

#include <cmath>

namespace qplug_quant_common {

[[noreturn]] void option_error(const QuantSetup& setup, const std::string& key, const std::string& message,
                               const std::string& hint) {
  std::string place = setup.place.empty() ? key : setup.place + ": " + key;
  throw qsdk::Error(qsdk::ErrorCategory::config, place, message, hint);
}

double effective_gradient_scale(double g) {
  // int() truncates toward zero, so exactly the factors in [1, 2) are dropped.
  return static_cast<int64_t>(g) == 1 ? 1.0 : g;
}

QuantSetup make_setup(const CommonOptions& o, const qsdk::QuantizerContext& ctx) {
  QuantSetup s;
  s.target = ctx.target;
  s.shape = ctx.shape;
  s.place = ctx.module_path;
  if (s.shape.size() < 2) {
    option_error(s, "shape", "quantizer shape must have at least 2 dimensions",
                 "activations use [1, C, 1, 1], weights [O, I, k, k]");
  }
  for (int64_t d : s.shape) {
    if (d <= 0) option_error(s, "shape", "quantizer shape has a non-positive dimension");
  }
  s.levels = o.levels > 0 ? o.levels : (int64_t{1} << o.bits);
  if (s.levels < 2) option_error(s, "levels", "a quantizer needs at least 2 levels");
  s.bits = o.bits;
  if (o.half_range == HalfRange::automatic) {
    s.half_range = ctx.target == qsdk::QuantTarget::activation;
  } else {
    s.half_range = o.half_range == HalfRange::yes;
  }

  const int64_t p = s.shape[0] * s.shape[1];
  const bool weight = ctx.target == qsdk::QuantTarget::weight;
  int64_t groups = weight ? s.shape[0] : 1;
  if (o.quant_group != 0) {
    const int64_t q = std::llabs(o.quant_group);
    if (p % q != 0) {
      option_error(s, "quant_group",
                   "quant_group " + std::to_string(o.quant_group) + " does not divide the " +
                       std::to_string(p) + " leading elements (shape[0]*shape[1])",
                   "use a divisor of " + std::to_string(p) + ", or 0 for the default grouping");
    }
    groups = o.quant_group > 0 ? q : p / q;
  }
  s.groups = groups;
  s.norm_groups = o.independent_norm ? 1 : groups;

  int64_t total = 1;
  for (int64_t d : s.shape) total *= d;
  s.fan = total / s.shape[0];
  s.n_elements = total / groups;
  if (!weight) {
    s.n_elements *= ctx.batch_size;
    if (ctx.input_size > 0) s.n_elements *= ctx.input_size * ctx.input_size;
  }
  const double scale = o.scale;
  switch (o.grad_scale) {
    case GradScale::fan_scale: s.grad_factor = std::sqrt(static_cast<double>(s.fan)) * scale; break;
    case GradScale::scale_fan: s.grad_factor = scale / std::sqrt(static_cast<double>(s.fan)); break;
    case GradScale::element_scale: s.grad_factor = std::sqrt(static_cast<double>(s.n_elements)) * scale; break;
    case GradScale::scale_element: s.grad_factor = scale / std::sqrt(static_cast<double>(s.n_elements)); break;
    case GradScale::none: s.grad_factor = 1.0; break;
  }
  return s;
}

}  // namespace qplug_quant_common
