// scheduler/poly: the reference's `poly` policy with restarts at the milestones
// (docs/training.md#learning-rate-policies). The reference evaluates it once per epoch; `per_iteration`
// evaluates the same curve at fractional epochs instead.
#include <qsdk/plugin.hpp>

#include "lr_formulas.hpp"

#include <vector>

namespace qplug_poly {

namespace common = qplug_scheduler_common;

/// Options of scheduler/poly.
///
/// Example (Bi-Real recipe: linear decay to 0 over the whole run):
/// ```toml
/// [scheduler]
/// type = "poly"
/// power = 1.0
/// ```
struct PolyOptions {
  std::vector<int64_t> milestones;
  double power = 1.0;
  double eta_min = 0.0;
  bool per_iteration = false;
  double warmup_epochs = 0.0;
  double warmup_lr = 0.0;
  static qsdk::Schema<PolyOptions> schema() {
    return qsdk::Schema<PolyOptions>(
               "Polynomial decay with restarts: eta_min + (lr0 - eta_min) * (1 - (e - last) / length)^power")
        .field("milestones", &PolyOptions::milestones,
               "epochs where a new decay period starts (reference lr_custom_step; empty = one period)")
        .at_least(1)
        .field("power", &PolyOptions::power, "exponent (reference lr_decay; 1 = linear)")
        .at_least(0)
        .field("eta_min", &PolyOptions::eta_min, "lr at the end of each period")
        .at_least(0)
        .field("per_iteration", &PolyOptions::per_iteration,
               "evaluate at fractional epochs every iteration (false = once per epoch, as the reference)")
        .field("warmup_epochs", &PolyOptions::warmup_epochs, "linear warm-up length in epochs (0 = none)")
        .at_least(0)
        .field("warmup_lr", &PolyOptions::warmup_lr, "lr at the first warm-up iteration")
        .at_least(0);
  }
};

/// Polynomial decay with restarts and an optional linear warm-up.
class PolyScheduler : public qsdk::Scheduler {
 public:
  PolyScheduler(PolyOptions options, const qsdk::SchedulerContext& context)
      : options_(std::move(options)), context_(context) {
    common::check_milestones(options_.milestones, "milestones");
  }
  double lr(int64_t epoch, int64_t iter) const override {
    return common::with_warmup(
        {options_.warmup_epochs, options_.warmup_lr}, {epoch, iter, context_.iters_per_epoch},
        [this](const common::Position& p) {
          double x = static_cast<double>(p.epoch);
          if (options_.per_iteration)
            x += static_cast<double>(p.iter) / static_cast<double>(p.iters_per_epoch);
          return common::poly_lr(context_.base_lr, options_.eta_min, options_.power,
                                 options_.milestones, context_.epochs, x);
        });
  }

 private:
  PolyOptions options_;
  qsdk::SchedulerContext context_;
};

}  // namespace qplug_poly

QSDK_PLUGIN("poly", "1.0.0", "Polynomial lr decay with restarts (reference poly) and linear warm-up") {
  registrar.add_scheduler<qplug_poly::PolyScheduler, qplug_poly::PolyOptions>("poly");
}
