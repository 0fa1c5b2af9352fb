// qsdk/scheduler.hpp - learning-rate policies (kind `scheduler`).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <cstdint>

namespace qsdk {

/// The run a scheduler plans for.
struct QSDK_API SchedulerContext {
  double base_lr = 0.1;           ///< the optimizer's configured learning rate
  int64_t epochs = 1;             ///< total training epochs
  int64_t iters_per_epoch = 1;    ///< optimizer steps per epoch
};

/// A learning-rate policy: a pure function of the position in training, so a
/// resumed run needs no scheduler state.
class QSDK_API Scheduler {
 public:
  virtual ~Scheduler();
  /// Learning rate for iteration `iter` (0-based, within the epoch) of epoch
  /// `epoch` (0-based), warm-up included.
  virtual double lr(int64_t epoch, int64_t iter) const = 0;
};

}  // namespace qsdk
