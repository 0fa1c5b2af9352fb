// scheduler/multistep: the reference's `custom_step` policy, lr = base * gamma^k(e)
// with k(e) the number of milestones <= e (docs/training.md#learning-rate-policies).
#include <qsdk/plugin.hpp>

#include "lr_formulas.hpp"

#include <string>
#include <vector>

namespace qplug_multistep {

namespace common = qplug_scheduler_common;

/// Options of scheduler/multistep.
///
/// Example (the CIFAR recipe R-C-FP):
/// ```toml
/// [scheduler]
/// type = "multistep"
/// milestones = [60, 120, 160]
/// gamma = 0.2
/// ```
struct MultistepOptions {
  std::vector<int64_t> milestones{30, 60, 80};
  double gamma = 0.1;
  std::vector<double> gammas;
  double warmup_epochs = 0.0;
  double warmup_lr = 0.0;
  static qsdk::Schema<MultistepOptions> schema() {
    return qsdk::Schema<MultistepOptions>(
               "Multi-step decay (reference custom_step): lr = lr0 * gamma^#{milestones <= epoch}")
        .field("milestones", &MultistepOptions::milestones,
               "epochs at which the lr is multiplied by gamma (reference lr_custom_step)")
        .at_least(1)
        .field("gamma", &MultistepOptions::gamma, "decay factor per milestone (reference lr_decay)")
        .at_least(0)
        .field("gammas", &MultistepOptions::gammas,
               "one factor per milestone instead of gamma (empty = use gamma)")
        .at_least(0)
        .field("warmup_epochs", &MultistepOptions::warmup_epochs,
               "linear warm-up length in epochs (0 = none)")
        .at_least(0)
        .field("warmup_lr", &MultistepOptions::warmup_lr, "lr at the first warm-up iteration")
        .at_least(0);
  }
};

/// Per-epoch multi-step decay with an optional linear warm-up.
class MultistepScheduler : public qsdk::Scheduler {
 public:
  MultistepScheduler(MultistepOptions options, const qsdk::SchedulerContext& context)
      : options_(std::move(options)), context_(context) {
    common::check_milestones(options_.milestones, "milestones");
    if (!options_.gammas.empty() && options_.gammas.size() != options_.milestones.size())
      qsdk::config_error("gammas",
                         "has " + std::to_string(options_.gammas.size()) + " entries but there are " +
                             std::to_string(options_.milestones.size()) + " milestones",
                         "give one factor per milestone, or leave gammas empty and set gamma");
  }
  double lr(int64_t epoch, int64_t iter) const override {
    return common::with_warmup({options_.warmup_epochs, options_.warmup_lr},
                               {epoch, iter, context_.iters_per_epoch},
                               [this](const common::Position& p) {
                                 return common::multistep_lr(context_.base_lr, options_.milestones,
                                                             options_.gamma, options_.gammas, p.epoch);
                               });
  }

 private:
  MultistepOptions options_;
  qsdk::SchedulerContext context_;
};

}  // namespace qplug_multistep

QSDK_PLUGIN("multistep", "1.0.0", "Multi-step lr decay (reference custom_step) with linear warm-up") {
  registrar.add_scheduler<qplug_multistep::MultistepScheduler, qplug_multistep::MultistepOptions>(
      "multistep");
}
