// quant_common/quantizer_base.hpp - state and helpers every quantizer shares
// (docs/methods.md#the-quantizer-object: iteration counter, level_num, warm-up, weight standardisation, gamma).
#pragma once

#include <quant_common/kernels.hpp>
#include <quant_common/options.hpp>

#include <qsdk/exportable.hpp>
#include <qsdk/quantizer.hpp>

namespace qplug_quant_common {

/// A host copy of a one-element state tensor (a counter, level_num) that its
/// quantizer updates itself, so reading it each forward needs no device
/// synchronisation. The tensor is read (one synchronisation) only the first
/// time and after something else wrote to it (a checkpoint load, a
/// data-parallel broadcast), which its version counter shows.
class HostMirror {
 public:
  /// The tensor's value, from the host copy while it is current.
  double get(const at::Tensor& t) {
    if (!current(t)) {
      value_ = t.item<double>();
      remember(t);
    }
    return value_;
  }
  /// Records `value` as the tensor's value after the owner's own in-place update.
  void updated(const at::Tensor& t, double value) {
    value_ = value;
    remember(t);
  }

 private:
  bool current(const at::Tensor& t) const {
    return impl_ == t.unsafeGetTensorImpl() && version_ == static_cast<int64_t>(t._version());
  }
  void remember(const at::Tensor& t) {
    impl_ = t.unsafeGetTensorImpl();
    version_ = static_cast<int64_t>(t._version());
  }
  double value_ = 0.0;
  const void* impl_ = nullptr;
  int64_t version_ = -1;
};

/// True when `t` is on the CPU and every value satisfies `pred`; false on any
/// other device without reading it (the caller then takes its always-correct
/// path: a device read would synchronise every forward).
bool all_on_cpu(const at::Tensor& t, bool (*pred)(float));

/// Base of the quantizer modules: registers the `iteration` and `level_num`
/// buffers (shape [1]) and, with `gamma`, the learnable `gamma` parameter.
class QuantizerBase : public qsdk::QuantizerImpl {
 public:
  /// Derives the setup from the options and the attachment context.
  QuantizerBase(const CommonOptions& options, const qsdk::QuantizerContext& ctx);

  int64_t num_levels() const override { return setup_.levels; }

  /// The construction-time derivations (groups, fan, grad_factor, ...).
  const QuantSetup& setup() const { return setup_; }

 protected:
  /// Group layout of the tensor `x` this quantizer sees: contiguous channel
  /// blocks for activations/outputs, contiguous flat blocks for weights.
  GroupLayout layout_for(const at::Tensor& x, int64_t groups) const;
  /// Shape of a per-group parameter: activation/output (1,) for one group,
  /// else (1, G, 1, 1); weight (G, 1, 1, 1) (docs/golden.md#parameter-and-state-names).
  std::vector<int64_t> group_param_shape() const;
  /// Weight `var-mean` standardisation over norm_groups blocks (unbiased std,
  /// no epsilon, statistics detached); identity for other settings.
  at::Tensor standardize(const at::Tensor& w) const;
  /// Adds 1 to the counter (no autograd) and returns true while in warm-up
  /// (counter <= stable).
  bool advance_counter();
  /// True while the counter is <= stable (without changing it).
  bool in_warmup() const;
  /// Warm-up clip estimate: clip <- (m + (it-1) clip) / it, m = max|x| (times
  /// correlate when > 0), in place (docs/methods.md#iteration-counter-and-warm-up).
  void warmup_clip(at::Tensor& clip, const at::Tensor& x) const;
  /// Multiplies by the learnable per-group gamma when enabled.
  at::Tensor apply_gamma(const at::Tensor& y) const;
  /// level_num - 1 as a float (the LSQ step count; a checkpoint may change it).
  double level_steps() const;
  /// Throws a config error unless the target is one of `allowed`.
  void require_target(std::initializer_list<qsdk::QuantTarget> allowed, const std::string& method) const;

  // qsdk::Exportable helpers (docs/methods.md#export-to-onnx).
  /// (export) Throws the config error of a state or option with no exact
  /// integer form: "<method> <target> quantizer has no exact ONNX form: <why>".
  [[noreturn]] void refuse_export(const std::string& method, const std::string& why,
                                  const std::string& hint = "") const;
  /// (export) Refuses while the next forward would still be a warm-up forward
  /// (which returns its input unquantized).
  void require_export_ready(const std::string& method) const;
  /// (export) The integer form of the quantized weight `y` (forward's value,
  /// gamma applied) whose levels are integer multiples of `group_step` (one
  /// element, or one per group); gamma is multiplied into the step. Verifies
  /// that y / step is an integer everywhere; maps the groups to a per-tensor or
  /// per-axis scale (refusing groups that do not follow one axis).
  qsdk::WeightExport weight_export(const at::Tensor& y, const at::Tensor& group_step,
                                   const std::string& method) const;
  /// (export) The affine form of an activation/output quantizer with the step
  /// `group_step` (one element or one per group, groups being blocks of
  /// channels) and the integer range [qmin, qmax] around `zero_point`.
  qsdk::ActivationExport activation_export(const at::Tensor& group_step, int64_t zero_point, int64_t qmin,
                                           int64_t qmax, const std::string& method) const;
  /// (export) The DoReFa tanh weight path (dorefa, pact) of the standardised
  /// weight `xn` with clip `clip` and `n` steps: levels 2k c / n - 1 are the
  /// integers 2k - n / c times c / n when n / c is an integer; refused otherwise.
  qsdk::WeightExport dorefa_weight_export(const at::Tensor& xn, double clip, int64_t n,
                                          const std::string& method) const;

  /// (export) The level-table form of a weight (docs/methods.md#export-to-onnx):
  /// forward's value `y`, each element's level index `codes` (0 <= code < L)
  /// and the tables `group_levels` [groups, L]. Verifies that
  /// group_levels[group, code] equals `y` bit for bit, and maps the groups to
  /// one table or one per index of an axis as weight_export does.
  qsdk::LevelWeightExport level_weight_export(const at::Tensor& y, const at::Tensor& codes,
                                              const at::Tensor& group_levels, const std::string& method) const;
  /// (export) The threshold form of an activation quantizer from per-group
  /// thresholds [groups, L - 1] and levels [groups, L] (groups being blocks of
  /// channels): one row, or one per channel.
  qsdk::LevelActivationExport level_activation_export(const at::Tensor& group_thresholds,
                                                      const at::Tensor& group_levels, bool upper_at_ties,
                                                      const std::string& method) const;

  CommonOptions common_;
  QuantSetup setup_;
  at::Tensor iteration_;
  at::Tensor level_num_;
  mutable HostMirror iteration_host_;  // iteration_ without a device read per forward
  mutable HostMirror level_num_host_;  // level_num_ likewise
  at::Tensor gamma_;
};

}  // namespace qplug_quant_common
