// policy_schedule.hpp - `[[schedule]]`: option changes at epoch boundaries
// (the reference's `--policy` files, spec §9, as TOML). Only keys whose
// change can be applied exactly are accepted; the rest are rejected at
// `qhost check` time.
#pragma once

#include <qsdk/scheduler.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qhost {

class Optimizer;

/// Reports one problem: (dotted key, message, hint).
using ProblemSink = std::function<void(const std::string&, const std::string&, const std::string&)>;

/// Dotted keys a `[[schedule]]` entry may set.
const std::vector<std::string>& schedule_supported_keys();

/// Validates the raw `[[schedule]]` value against the otherwise resolved
/// configuration `resolved` (every default explicit): each entry is
/// `{ epoch = E, set = { "a.b" = v, ... } }`, E within [0, train.epochs), every
/// key present in `resolved`, supported, and its value of the right type and
/// range. Returns the normalized list (sorted by epoch, stable), or none after
/// a problem.
qsdk::Value check_schedule(const qsdk::Value& raw, const qsdk::Table& resolved, const ProblemSink& problem);

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
  /// A scheduler that returns `inner`'s lr (or `base_lr` when `inner` is null)
  /// scaled by (scheduled optimizer.lr) / `base_lr`, so a new base lr rescales
  /// the scheduler's curve from the epoch it is set.
  std::shared_ptr<qsdk::Scheduler> wrap(std::shared_ptr<qsdk::Scheduler> inner, double base_lr);
  /// Applies every entry not yet applied whose epoch is <= `epoch` (so a
  /// resumed run catches up); returns one "key: old -> new" line per change.
  std::vector<std::string> on_epoch_begin(int64_t epoch, Optimizer& optimizer);

  /// The entries, in application order.
  const std::vector<ScheduleEntry>& entries() const { return entries_; }

 private:
  std::vector<ScheduleEntry> entries_;
  size_t next_ = 0;
  double base_lr_ = 0.0;
  std::shared_ptr<double> lr_factor_ = std::make_shared<double>(1.0);
};

}  // namespace qhost
