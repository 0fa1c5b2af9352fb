// SGDR: cosine annealing with warm restarts (Loshchilov & Hutter 2017), per
// iteration, as the reference's `sgdr` / `sgdr_step` policies (docs/training.md#learning-rate-policies).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include <cmath>

namespace qplug_sgdr {

struct SgdrOptions {
  std::vector<int64_t> milestones;
  int64_t period = 0;
  double multiplier = 1.0;
  double eta_min = 0.0;
  double restart_decay = 1.0;
  bool compat_chainable = false;
  static qsdk::Schema<SgdrOptions> schema() {
    return qsdk::Schema<SgdrOptions>("Cosine annealing with warm restarts, per iteration")
        .field("milestones", &SgdrOptions::milestones,
               "restart epochs (the reference's lr_custom_step); empty = use period/multiplier")
        .at_least(1)
        .field("period", &SgdrOptions::period, "epochs of the first cycle when milestones is empty (0 = whole run)")
        .at_least(0)
        .field("multiplier", &SgdrOptions::multiplier, "each cycle is this many times longer than the last")
        .at_least(1.0)
        .field("eta_min", &SgdrOptions::eta_min, "learning rate at the end of every cycle")
        .at_least(0.0)
        .field("restart_decay", &SgdrOptions::restart_decay,
               "base lr multiplied by this at every restart (the reference's sgdr_step with lr_decay)")
        .range(0.0, 1.0)
        .field("compat_chainable", &SgdrOptions::compat_chainable,
               "reproduce the reference under PyTorch >= 1.4: no real restarts, lr stays eta_min after cycle 1");
  }
};

/// Closed form lr = eta_min + (base - eta_min)(1 + cos(pi t / T)) / 2 with t the
/// iteration inside the current cycle and T its length in iterations.
class Sgdr : public qsdk::Scheduler {
 public:
  Sgdr(SgdrOptions options, const qsdk::SchedulerContext& context) : options_(std::move(options)), ctx_(context) {
    for (size_t i = 1; i < options_.milestones.size(); ++i)
      if (options_.milestones[i] <= options_.milestones[i - 1])
        qsdk::config_error("scheduler.milestones", "must be strictly increasing",
                           "write the restart epochs in ascending order");
  }

  double lr(int64_t epoch, int64_t iter) const override {
    int64_t cycle = 0, start = 0, length = 0;
    locate(epoch, cycle, start, length);
    const double base = ctx_.base_lr * std::pow(options_.restart_decay, static_cast<double>(cycle));
    if (options_.compat_chainable && cycle > 0) return options_.eta_min;
    const double t = static_cast<double>((epoch - start) * ctx_.iters_per_epoch + iter);
    const double total = static_cast<double>(std::max<int64_t>(1, length * ctx_.iters_per_epoch));
    return options_.eta_min + (base - options_.eta_min) * (1.0 + std::cos(M_PI * t / total)) / 2.0;
  }

 private:
  // Finds the cycle holding `epoch`: its index, first epoch and length in epochs.
  void locate(int64_t epoch, int64_t& cycle, int64_t& start, int64_t& length) const {
    const int64_t epochs = std::max<int64_t>(1, ctx_.epochs);
    if (!options_.milestones.empty()) {
      cycle = 0;
      start = 0;
      for (int64_t m : options_.milestones) {
        if (m <= epoch && m < epochs) {
          ++cycle;
          start = m;
        }
      }
      int64_t next = epochs;
      for (int64_t m : options_.milestones)
        if (m > epoch) {
          next = std::min(m, epochs);
          break;
        }
      length = std::max<int64_t>(1, next - start);
      return;
    }
    double len = options_.period > 0 ? static_cast<double>(options_.period) : static_cast<double>(epochs);
    cycle = 0;
    start = 0;
    while (static_cast<double>(epoch) >= static_cast<double>(start) + std::round(len)) {
      start += static_cast<int64_t>(std::round(len));
      len *= options_.multiplier;
      ++cycle;
    }
    length = std::max<int64_t>(1, static_cast<int64_t>(std::round(len)));
  }

  SgdrOptions options_;
  qsdk::SchedulerContext ctx_;
};

}  // namespace qplug_sgdr

QSDK_PLUGIN("sgdr", "0.1.0", "Cosine annealing with warm restarts") {
  using namespace qplug_sgdr;
  registrar.add_scheduler<Sgdr, SgdrOptions>("sgdr");
}
