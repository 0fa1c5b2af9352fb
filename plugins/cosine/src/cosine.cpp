// scheduler/cosine: the reference's `sgdr` (and `sgdr_step` with gamma != 1),
// cosine annealing per iteration with restarts at the milestones (docs/training.md#learning-rate-policies).
#include <qsdk/plugin.hpp>

#include "lr_formulas.hpp"

#include <vector>

namespace qplug_cosine {

namespace common = qplug_scheduler_common;

/// Options of scheduler/cosine.
///
/// Example (the LQ-Net recipe R-LQ):
/// ```toml
/// [scheduler]
/// type = "cosine"
/// milestones = [8, 24]
/// eta_min = 1e-6
/// ```
struct CosineOptions {
  std::vector<int64_t> milestones;
  double eta_min = 0.0;
  double gamma = 1.0;
  bool chainable = false;
  double warmup_epochs = 0.0;
  double warmup_lr = 0.0;
  static qsdk::Schema<CosineOptions> schema() {
    return qsdk::Schema<CosineOptions>(
               "Cosine annealing per iteration with restarts (reference sgdr / sgdr_step)")
        .field("milestones", &CosineOptions::milestones,
               "epochs where the cosine restarts (reference lr_custom_step; empty = one period)")
        .at_least(1)
        .field("eta_min", &CosineOptions::eta_min, "lr at the end of each period")
        .at_least(0)
        .field("gamma", &CosineOptions::gamma,
               "period k starts from lr0 * gamma^k (1 = sgdr, reference lr_decay for sgdr_step)")
        .at_least(0)
        .field("chainable", &CosineOptions::chainable,
               "reproduce PyTorch >= 1.4 chainable restarts: after the first period the lr stays at eta_min")
        .field("warmup_epochs", &CosineOptions::warmup_epochs, "linear warm-up length in epochs (0 = none)")
        .at_least(0)
        .field("warmup_lr", &CosineOptions::warmup_lr, "lr at the first warm-up iteration")
        .at_least(0);
  }
};

/// Closed-form SGDR with an optional linear warm-up.
class CosineScheduler : public qsdk::Scheduler {
 public:
  CosineScheduler(CosineOptions options, const qsdk::SchedulerContext& context)
      : options_(std::move(options)), context_(context) {
    common::check_milestones(options_.milestones, "milestones");
  }
  double lr(int64_t epoch, int64_t iter) const override {
    return common::with_warmup({options_.warmup_epochs, options_.warmup_lr},
                               {epoch, iter, context_.iters_per_epoch},
                               [this](const common::Position& p) {
                                 return common::cosine_lr(context_.base_lr, options_.eta_min,
                                                          options_.gamma, options_.chainable,
                                                          options_.milestones, context_.epochs, p);
                               });
  }

 private:
  CosineOptions options_;
  qsdk::SchedulerContext context_;
};

}  // namespace qplug_cosine

QSDK_PLUGIN("cosine", "1.0.0", "Cosine annealing with restarts (reference sgdr) and linear warm-up") {
  registrar.add_scheduler<qplug_cosine::CosineScheduler, qplug_cosine::CosineOptions>("cosine");
}
