// build_optimization(): [optimizer], [scheduler] and a schedule's lr changes.
#include "train/optimization_builder.hpp"

#include "config/sections.hpp"
#include "plugins/registry.hpp"
#include "train/param_groups.hpp"
#include "train/policy_schedule.hpp"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>

namespace qhost {

OptimizationParts build_optimization(const qsdk::Table& root, Registry& registry, const torch::nn::Module& model,
                                     int64_t batches_per_epoch, bool smoke, PolicySchedule* schedule) {
  OptimizationParts out;
  const auto settings = OptimizerSettings::from_table(section_table(root, "optimizer"));
  out.optimizer = std::make_unique<Optimizer>(model, settings);
  spdlog::info("optimizer: {} - {}", settings.type, describe_param_groups(out.optimizer->groups()));
  const auto& sched = section_table(root, "scheduler");
  if (names_a_plugin(sched)) {
    const auto train_opts = section_options<TrainOptions>(root, "train");
    qsdk::SchedulerContext sctx;
    sctx.base_lr = settings.rules.lr;
    sctx.epochs = smoke ? 1 : train_opts.epochs;
    int64_t iters = batches_per_epoch;
    if (train_opts.max_steps_per_epoch > 0) iters = std::min(iters, train_opts.max_steps_per_epoch);
    if (smoke) iters = std::min<int64_t>(iters, 2);
    sctx.iters_per_epoch = std::max<int64_t>(iters, 1);
    out.scheduler = registry.make_scheduler(sched, sctx);
  }
  // (sweep) [[schedule]]: a new optimizer.lr rescales the scheduler's curve from its epoch.
  if (schedule && schedule->changes_lr()) out.scheduler = schedule->wrap(out.scheduler, settings.rules.lr);
  return out;
}

}  // namespace qhost
