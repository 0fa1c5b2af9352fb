// optimization_builder.hpp - an experiment's optimizer ([optimizer]) and
// learning-rate scheduler ([scheduler], rescaled by a [[schedule]] that
// changes optimizer.lr).
#pragma once

#include "train/optimizer.hpp"

#include <qsdk/scheduler.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <memory>

namespace qhost {

class PolicySchedule;
class Registry;

/// What build_optimization() makes.
struct OptimizationParts {
  std::unique_ptr<Optimizer> optimizer;         ///< over the model's parameter groups
  std::shared_ptr<qsdk::Scheduler> scheduler;  ///< null = constant lr
};

/// The optimizer of `model` and the scheduler of the validated configuration
/// `root`. The scheduler is told `batches_per_epoch` (capped by
/// train.max_steps_per_epoch; 2 steps and 1 epoch with `smoke`); `schedule`
/// (may be null) wraps it when it changes optimizer.lr.
OptimizationParts build_optimization(const qsdk::Table& root, Registry& registry, const torch::nn::Module& model,
                                     int64_t batches_per_epoch, bool smoke, PolicySchedule* schedule);

}  // namespace qhost
