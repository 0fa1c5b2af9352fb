// lr_formulas.hpp - the reference's learning-rate policies as pure functions
// (docs/training.md#learning-rate-policies) plus the linear warm-up every scheduler plugin offers
// (docs/training.md#warm-up-mechanisms).
#pragma once

#include <cstdint>
#include <vector>

namespace qplug_scheduler_common {

/// Linear warm-up shared by every policy: for the first
/// round(warmup_epochs * iters_per_epoch) iterations the lr rises linearly
/// from `warmup_lr` to the policy's value at the end of the warm-up.
struct Warmup {
  double epochs = 0.0;  ///< length in epochs (fractions allowed)
  double start_lr = 0.0;  ///< lr at iteration 0
};

/// Position of an iteration in training.
struct Position {
  int64_t epoch = 0;            ///< 0-based epoch
  int64_t iter = 0;             ///< 0-based iteration inside the epoch
  int64_t iters_per_epoch = 1;  ///< optimizer steps per epoch
};

/// Number of milestones m with m <= epoch (the reference's k(e)).
int64_t passed_milestones(const std::vector<int64_t>& milestones, int64_t epoch);

/// `fix_step`: base * gamma^(epoch / step_size).
double step_lr(double base, int64_t step_size, double gamma, int64_t epoch);

/// `custom_step`: base * gamma^k(e); with a non-empty `gammas`, the product of
/// the first k(e) factors instead (one factor per milestone).
double multistep_lr(double base, const std::vector<int64_t>& milestones, double gamma,
                    const std::vector<double>& gammas, int64_t epoch);

/// `poly` with restarts at the milestones: eta_min + (base - eta_min) *
/// (1 - (x - last) / length)^power, x the (possibly fractional) epoch.
double poly_lr(double base, double eta_min, double power, const std::vector<int64_t>& milestones,
               int64_t epochs, double x);

/// `sgdr`, closed form: cosine from base_k to eta_min over each period
/// [last, next) of the milestones, advanced per iteration; base_k =
/// base * gamma^k (gamma 1 = plain sgdr, lr_decay = `sgdr_step`). With
/// `chainable` (PyTorch >= 1.4 reference behaviour) every period after the
/// first stays at eta_min.
double cosine_lr(double base, double eta_min, double gamma, bool chainable,
                 const std::vector<int64_t>& milestones, int64_t epochs, const Position& pos);

/// Applies the warm-up to `policy`, a function of the position; returns the lr.
template <class Policy>
double with_warmup(const Warmup& warmup, const Position& pos, Policy&& policy) {
  const auto total = static_cast<int64_t>(warmup.epochs * static_cast<double>(pos.iters_per_epoch) + 0.5);
  const int64_t global = pos.epoch * pos.iters_per_epoch + pos.iter;
  if (global >= total) return policy(pos);
  Position end{total / pos.iters_per_epoch, total % pos.iters_per_epoch, pos.iters_per_epoch};
  const double target = policy(end);
  return warmup.start_lr + (target - warmup.start_lr) * static_cast<double>(global) / static_cast<double>(total);
}

/// Checks that milestones are strictly increasing and positive; throws
/// qsdk::Error(config) naming `key` otherwise.
void check_milestones(const std::vector<int64_t>& milestones, const char* key);

}  // namespace qplug_scheduler_common
