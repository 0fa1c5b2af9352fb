// Shared quantizer state and helpers (docs/methods.md#the-quantizer-object).
#include <quant_common/quantizer_base.hpp>

#include <qsdk/distributed.hpp>
#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace qplug_quant_common {

QuantizerBase::QuantizerBase(const CommonOptions& options, const qsdk::QuantizerContext& ctx)
    : common_(options), setup_(make_setup(options, ctx)) {
  iteration_ = register_buffer("iteration", torch::zeros({1}));
  level_num_ = register_buffer("level_num", torch::full({1}, static_cast<float>(setup_.levels)));
  // The values just written: not even the first forward reads them back.
  iteration_host_.updated(iteration_, 0.0);
  level_num_host_.updated(level_num_, static_cast<double>(static_cast<float>(setup_.levels)));
  if (options.gamma) {
    std::vector<int64_t> shape = {setup_.groups, 1, 1, 1};
    if (ctx.target == qsdk::QuantTarget::output) shape = {1, setup_.groups, 1, 1};
    if (ctx.target == qsdk::QuantTarget::activation)
      option_error(setup_, "gamma", "gamma applies to weight and output quantizers only");
    gamma_ = register_parameter("gamma", torch::ones(shape));
  }
  if (options.adaptive == Adaptive::var_mean && ctx.target != qsdk::QuantTarget::weight)
    option_error(setup_, "adaptive", "var-mean standardisation applies to weights only",
                 "remove `adaptive` from the activation/output quantizer");
  if (options.adaptive == Adaptive::var_mean && setup_.norm_groups != 1 && setup_.norm_groups != setup_.shape[0])
    option_error(setup_, "adaptive",
                 "var-mean needs one statistics group or one per output channel, got " +
                     std::to_string(setup_.norm_groups),
                 "set independent_norm = true to standardise over the whole layer");
}

GroupLayout QuantizerBase::layout_for(const at::Tensor& x, int64_t groups) const {
  if (setup_.target == qsdk::QuantTarget::weight) return GroupLayout::flat_blocks(x.numel(), groups);
  return GroupLayout::channel_blocks(x, groups);
}

std::vector<int64_t> QuantizerBase::group_param_shape() const {
  if (setup_.target == qsdk::QuantTarget::weight) return {setup_.groups, 1, 1, 1};
  if (setup_.groups == 1) return {1};
  return {1, setup_.groups, 1, 1};
}

at::Tensor QuantizerBase::standardize(const at::Tensor& w) const {
  if (common_.adaptive != Adaptive::var_mean || setup_.target != qsdk::QuantTarget::weight) return w;
  at::Tensor d = w.detach().reshape({setup_.norm_groups, -1});
  at::Tensor mean = d.mean(1, true);
  at::Tensor std = d.std(1, /*unbiased=*/true, true);
  return ((w.reshape({setup_.norm_groups, -1}) - mean) / std).view(w.sizes());
}

bool QuantizerBase::advance_counter() {
  torch::NoGradGuard no_grad;
  // The counter is float32: the host copy rounds as the buffer does.
  const double next = static_cast<double>(static_cast<float>(iteration_host_.get(iteration_) + 1.0));
  iteration_.add_(1);
  iteration_host_.updated(iteration_, next);
  return in_warmup();
}

bool QuantizerBase::in_warmup() const {
  return iteration_host_.get(iteration_) <= static_cast<double>(common_.stable);
}

void QuantizerBase::warmup_clip(at::Tensor& clip, const at::Tensor& x) const {
  torch::NoGradGuard no_grad;
  at::Tensor m = x.detach().abs().max().to(clip.dtype());
  // In a data-parallel run, the largest activation of all ranks' batches (what one
  // process would see on the global batch); weights are the same on every rank.
  if (setup_.target != qsdk::QuantTarget::weight && qsdk::collectives().world_size() > 1) {
    m = m.reshape({1}).contiguous();
    qsdk::collectives().all_reduce_max_(m);
    m = m.reshape({});
  }
  if (common_.correlate > 0) m = m * common_.correlate;
  at::Tensor it = iteration_.to(clip.dtype()).to(clip.device());
  clip.copy_((m + (it - 1) * clip) / it);
}

at::Tensor QuantizerBase::apply_gamma(const at::Tensor& y) const {
  if (!gamma_.defined()) return y;
  if (setup_.target == qsdk::QuantTarget::weight)
    return (y.reshape({setup_.groups, -1}) * gamma_.reshape({setup_.groups, 1})).view(y.sizes());
  return y * gamma_;
}

double QuantizerBase::level_steps() const { return level_num_host_.get(level_num_) - 1.0; }

bool all_on_cpu(const at::Tensor& t, bool (*pred)(float)) {
  if (!t.defined() || !t.device().is_cpu()) return false;
  const at::Tensor c = t.detach().to(at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!pred(p[i])) return false;
  return true;
}

void QuantizerBase::require_target(std::initializer_list<qsdk::QuantTarget> allowed,
                                   const std::string& method) const {
  for (auto t : allowed)
    if (t == setup_.target) return;
  option_error(setup_, "target",
               method + " does not support " + std::string(qsdk::to_string(setup_.target)) + " quantizers",
               "choose another quantizer type for this tensor");
}

void QuantizerBase::refuse_export(const std::string& method, const std::string& why, const std::string& hint) const {
  throw qsdk::Error(qsdk::ErrorCategory::config, setup_.place,
                    method + " " + qsdk::to_string(setup_.target) + " quantizer has no exact ONNX form: " + why,
                    hint);
}

void QuantizerBase::require_export_ready(const std::string& method) const {
  // forward adds 1 to the counter first, then returns its input while counter <= stable.
  const double next = iteration_.item<double>() + 1.0;
  if (next <= static_cast<double>(common_.stable))
    refuse_export(method,
                  "it is still in its warm-up (iteration " + std::to_string(static_cast<int64_t>(next - 1)) +
                      " of stable = " + std::to_string(common_.stable) + "), where forward returns its input unquantized",
                  "export a checkpoint trained past the warm-up");
}

namespace {

/// Step values as a flat float tensor of `groups` elements (one given element is repeated).
at::Tensor group_steps(const at::Tensor& step, int64_t groups) {
  at::Tensor s = step.detach().to(torch::kFloat).reshape({-1});
  if (s.numel() == 1 && groups > 1) s = s.expand({groups}).contiguous();
  return s;
}

bool positive_finite(const at::Tensor& s) { return (s > 0).all().item<bool>() && torch::isfinite(s).all().item<bool>(); }

std::string to_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

/// The axis that `groups` contiguous flat blocks of a tensor of `shape` follow:
/// the first axis whose size the groups divide, when every axis before it has
/// size 1 (each group then covers shape[a] / groups whole slices of a); -1 if none.
int64_t axis_of_groups(at::IntArrayRef shape, int64_t groups) {
  for (int64_t a = 0; a < static_cast<int64_t>(shape.size()); ++a) {
    if (shape[a] % groups == 0) return a;
    if (shape[a] != 1) break;
  }
  return -1;
}

}  // namespace

qsdk::WeightExport QuantizerBase::weight_export(const at::Tensor& y_in, const at::Tensor& group_step,
                                                const std::string& method) const {
  torch::NoGradGuard no_grad;
  const int64_t g = setup_.groups;
  const bool one_step = group_step.numel() == 1 && !gamma_.defined();
  at::Tensor step = group_steps(group_step, g);
  if (step.numel() != g) refuse_export(method, "internal: " + std::to_string(step.numel()) + " steps for " + std::to_string(g) + " groups");
  if (gamma_.defined()) step = step * gamma_.detach().to(torch::kFloat).reshape({-1});
  if (!positive_finite(step))
    refuse_export(method, "a step (clip / levels" + std::string(gamma_.defined() ? " times gamma" : "") +
                              ") is zero, negative or not finite",
                  "a DequantizeLinear scale must be positive; check the checkpoint's clip values");
  at::Tensor y = y_in.detach().to(torch::kFloat).contiguous();
  at::Tensor u = y.reshape({g, -1}) / step.reshape({g, 1});
  at::Tensor codes = u.round();
  const double off = (u - codes).abs().max().item<double>();
  if (!(off <= 1e-3))
    refuse_export(method, "the quantized weight is not an integer multiple of its step (off by " + to_text(off) + " steps)");
  const int64_t lo = codes.min().item<int64_t>(), hi = codes.max().item<int64_t>();
  qsdk::WeightExport e;
  e.codes = codes.to(lo >= -128 && hi <= 127 ? torch::kChar : torch::kInt).view(y.sizes());
  if (one_step || g == 1) {
    e.scale = step.slice(0, 0, 1).clone();
    return e;
  }
  const auto shape = y.sizes();
  const int64_t a = axis_of_groups(shape, g);
  if (a >= 0) {
    e.axis = a;
    e.scale = step.repeat_interleave(shape[a] / g).contiguous();
    return e;
  }
  refuse_export(method,
                std::to_string(g) + " groups of the weight (quant_group) do not follow one axis of its shape",
                "use quant_group = 0 (per output channel) or 1 (per tensor)");
}

qsdk::ActivationExport QuantizerBase::activation_export(const at::Tensor& group_step, int64_t zero_point, int64_t qmin,
                                                        int64_t qmax, const std::string& method) const {
  torch::NoGradGuard no_grad;
  if (gamma_.defined())
    refuse_export(method, "gamma multiplies the dequantized value by a learned factor per channel",
                  "drop gamma from the output quantizer");
  const int64_t g = setup_.groups;
  at::Tensor step = group_steps(group_step, g);
  if (!positive_finite(step))
    refuse_export(method, "a step (clip / levels) is zero, negative or not finite",
                  "a QuantizeLinear scale must be positive; check the checkpoint's clip values");
  const bool is_signed = qmin < 0;
  const int64_t tmin = is_signed ? -128 : 0, tmax = is_signed ? 127 : 255;
  if (qmin < tmin || qmax > tmax || zero_point < qmin || zero_point > qmax)
    refuse_export(method, "its codes [" + std::to_string(qmin) + ", " + std::to_string(qmax) +
                              "] do not fit " + (is_signed ? "int8" : "uint8"));
  qsdk::ActivationExport e;
  e.zero_point = zero_point;
  e.qmin = qmin;
  e.qmax = qmax;
  e.is_signed = is_signed;
  if (group_step.numel() == 1 || g == 1) {
    e.scale = step.slice(0, 0, 1).clone();
    return e;
  }
  const int64_t c = setup_.shape[1];
  if (c % g != 0)
    refuse_export(method, std::to_string(g) + " groups do not divide the " + std::to_string(c) + " channels");
  e.scale = step.repeat_interleave(c / g).contiguous();
  return e;
}

qsdk::WeightExport QuantizerBase::dorefa_weight_export(const at::Tensor& xn, double clip, int64_t n,
                                                       const std::string& method) const {
  const double m = static_cast<double>(n) / clip;
  if (std::fabs(m - std::round(m)) > 1e-9 * m)
    refuse_export(method,
                  "its weight levels 2k * boundary / n - 1 are not integer multiples of one step: n / boundary = " +
                      to_text(m) + " is not an integer",
                  "use boundary = 1 (or one that divides the " + std::to_string(n) + " steps) for the weights");
  torch::NoGradGuard no_grad;
  at::Tensor y = apply_gamma(dorefa_weight(xn, clip, n));
  return weight_export(y, torch::full({1}, clip / static_cast<double>(n), torch::kDouble), method);
}

qsdk::LevelWeightExport QuantizerBase::level_weight_export(const at::Tensor& y_in, const at::Tensor& codes_in,
                                                           const at::Tensor& group_levels,
                                                           const std::string& method) const {
  torch::NoGradGuard no_grad;
  const int64_t g = setup_.groups;
  at::Tensor table = group_levels.detach().to(torch::kFloat).contiguous();
  if (table.dim() != 2 || table.size(0) != g || table.size(1) < 2 || table.size(1) > 256)
    refuse_export(method, "internal: a level table of shape " + c10::str(table.sizes()) + " for " +
                              std::to_string(g) + " groups (2 to 256 levels)");
  const int64_t levels = table.size(1);
  at::Tensor y = y_in.detach().to(torch::kFloat).contiguous();
  at::Tensor codes = codes_in.detach().to(torch::kLong).reshape({g, -1});
  if (codes.numel() != y.numel() || (codes < 0).any().item<bool>() || (codes >= levels).any().item<bool>())
    refuse_export(method, "internal: level indices outside [0, " + std::to_string(levels) + ")");
  // The table is forward's own arithmetic on the levels, so the match is exact,
  // not within a tolerance: anything else would be an approximation.
  at::Tensor back = table.gather(1, codes);
  if (!back.equal(y.reshape({g, -1})))
    refuse_export(method, "internal: the level table does not reproduce the quantized weight exactly (off by " +
                              to_text((back - y.reshape({g, -1})).abs().max().item<double>()) + ")");
  qsdk::LevelWeightExport e;
  e.codes = codes.to(torch::kByte).view(y.sizes());
  if (g == 1 || (table == table.slice(0, 0, 1)).all().item<bool>()) {
    e.levels = table[0].clone();
    return e;
  }
  const int64_t a = axis_of_groups(y.sizes(), g);
  if (a < 0)
    refuse_export(method,
                  std::to_string(g) + " groups of the weight (quant_group) do not follow one axis of its shape",
                  "use quant_group = 0 (per output channel) or 1 (per tensor)");
  e.axis = a;
  e.levels = table.repeat_interleave(y.size(a) / g, 0).contiguous();
  return e;
}

qsdk::LevelActivationExport QuantizerBase::level_activation_export(const at::Tensor& group_thresholds,
                                                                   const at::Tensor& group_levels, bool upper_at_ties,
                                                                   const std::string& method) const {
  torch::NoGradGuard no_grad;
  if (gamma_.defined())
    refuse_export(method, "gamma multiplies the quantized value by a learned factor per channel",
                  "drop gamma from the output quantizer");
  const int64_t g = setup_.groups;
  at::Tensor thr = group_thresholds.detach().to(torch::kFloat).contiguous();
  at::Tensor lev = group_levels.detach().to(torch::kFloat).contiguous();
  if (thr.dim() != 2 || lev.dim() != 2 || thr.size(0) != g || lev.size(0) != g || lev.size(1) < 2 ||
      thr.size(1) != lev.size(1) - 1)
    refuse_export(method, "internal: thresholds " + c10::str(thr.sizes()) + " and levels " + c10::str(lev.sizes()) +
                              " for " + std::to_string(g) + " groups");
  if (!torch::isfinite(lev).all().item<bool>())
    refuse_export(method, "a level is not finite", "check the checkpoint's learned state");
  qsdk::LevelActivationExport e;
  e.upper_at_ties = upper_at_ties;
  if (g == 1) {
    e.thresholds = thr[0].clone();
    e.levels = lev[0].clone();
    return e;
  }
  const int64_t c = setup_.shape[1];
  if (c % g != 0)
    refuse_export(method, std::to_string(g) + " groups do not divide the " + std::to_string(c) + " channels");
  e.thresholds = thr.repeat_interleave(c / g, 0).contiguous();
  e.levels = lev.repeat_interleave(c / g, 0).contiguous();
  return e;
}

}  // namespace qplug_quant_common
