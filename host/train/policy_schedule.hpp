// policy_schedule.hpp - applying a validated `[[schedule]]` (config/schedule_check.hpp)
// while training: optimizer keys change the optimizer in place; quantizer keys
// (`quant.<target>.<option>`) rebuild the affected quantizers
// (quant/quant_rebuild.hpp) and rebind the optimizer to their tensors.
#pragma once

#include <qsdk/scheduler.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qhost {

class Optimizer;
class QuantRebuilder;

/// One entry of a validated schedule.
struct ScheduleEntry {
  int64_t epoch = 0;                                     ///< applied at the start of this 0-based epoch
  std::vector<std::pair<std::string, qsdk::Value>> set;  ///< dotted key -> new value
};

/// Applies a validated schedule while training.
class PolicySchedule {
 public:
  /// The schedule of a validated configuration; null when it has no entries.
  static std::shared_ptr<PolicySchedule> from_config(const qsdk::Table& root);

  /// True when some entry changes `optimizer.lr`.
  bool changes_lr() const;
  /// True when some entry changes a quantizer option.
  bool changes_quant() const;
  /// Gives the schedule the model's quantizers (needed when changes_quant()).
  void attach_quantizers(std::shared_ptr<QuantRebuilder> rebuilder);
  /// Applies the quantizer changes of every entry whose epoch is < `epochs_done`
  /// (a resumed run or an evaluated checkpoint: the checkpoint was written by
  /// the rebuilt quantizers, so they must exist before it is loaded) and
  /// rebinds `optimizer` when given. The optimizer keys of those entries are
  /// left to on_epoch_begin. Returns the log lines.
  std::vector<std::string> catch_up_quantizers(int64_t epochs_done, Optimizer* optimizer);
  /// A scheduler that returns `inner`'s lr (or `base_lr` when `inner` is null)
  /// scaled by (scheduled optimizer.lr) / `base_lr`, so a new base lr rescales
  /// the scheduler's curve from the epoch it is set.
  std::shared_ptr<qsdk::Scheduler> wrap(std::shared_ptr<qsdk::Scheduler> inner, double base_lr);
  /// Applies every change not yet applied whose epoch is <= `epoch` (so a
  /// resumed run catches up); returns one "key: old -> new" line per change,
  /// plus one "quantizers: rebuilt N ..." line per entry that changed quantizers.
  std::vector<std::string> on_epoch_begin(int64_t epoch, Optimizer& optimizer);

  /// The entries, in application order.
  const std::vector<ScheduleEntry>& entries() const { return entries_; }

 private:
  // Applies the keys of entries_[i] not done yet (only the quantizer keys with `quant_only`).
  std::vector<std::string> apply(size_t i, Optimizer* optimizer, bool quant_only);

  std::vector<ScheduleEntry> entries_;
  std::vector<std::vector<bool>> done_;  // per entry, per key
  std::shared_ptr<QuantRebuilder> quant_;
  double base_lr_ = 0.0;
  std::shared_ptr<double> lr_factor_ = std::make_shared<double>(1.0);
};

}  // namespace qhost
