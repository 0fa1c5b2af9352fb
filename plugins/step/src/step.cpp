// scheduler/step: the reference's `fix_step` policy, lr = base * gamma^(epoch / step_size).
#include <qsdk/plugin.hpp>

#include "lr_formulas.hpp"

namespace qplug_step {

namespace common = qplug_scheduler_common;

/// Options of scheduler/step.
///
/// Example:
/// ```toml
/// [scheduler]
/// type = "step"
/// step_size = 30
/// gamma = 0.1
/// ```
struct StepOptions {
  int64_t step_size = 30;
  double gamma = 0.1;
  double warmup_epochs = 0.0;
  double warmup_lr = 0.0;
  static qsdk::Schema<StepOptions> schema() {
    return qsdk::Schema<StepOptions>("Step decay: lr = lr0 * gamma^floor(epoch / step_size)")
        .field("step_size", &StepOptions::step_size, "epochs between two decays (reference lr_fix_step)")
        .at_least(1)
        .field("gamma", &StepOptions::gamma, "decay factor (reference lr_decay)")
        .at_least(0)
        .field("warmup_epochs", &StepOptions::warmup_epochs, "linear warm-up length in epochs (0 = none)")
        .at_least(0)
        .field("warmup_lr", &StepOptions::warmup_lr, "lr at the first warm-up iteration")
        .at_least(0);
  }
};

/// Per-epoch step decay with an optional linear warm-up.
class StepScheduler : public qsdk::Scheduler {
 public:
  StepScheduler(StepOptions options, const qsdk::SchedulerContext& context)
      : options_(options), context_(context) {}
  double lr(int64_t epoch, int64_t iter) const override {
    return common::with_warmup({options_.warmup_epochs, options_.warmup_lr},
                               {epoch, iter, context_.iters_per_epoch},
                               [this](const common::Position& p) {
                                 return common::step_lr(context_.base_lr, options_.step_size,
                                                        options_.gamma, p.epoch);
                               });
  }

 private:
  StepOptions options_;
  qsdk::SchedulerContext context_;
};

}  // namespace qplug_step

QSDK_PLUGIN("step", "1.0.0", "Step learning-rate decay (reference fix_step) with linear warm-up") {
  registrar.add_scheduler<qplug_step::StepScheduler, qplug_step::StepOptions>("step");
}
