#include "lr_formulas.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace qplug_scheduler_common {

int64_t passed_milestones(const std::vector<int64_t>& milestones, int64_t epoch) {
  int64_t k = 0;
  for (int64_t m : milestones) k += (m <= epoch) ? 1 : 0;
  return k;
}

double step_lr(double base, int64_t step_size, double gamma, int64_t epoch) {
  return base * std::pow(gamma, static_cast<double>(epoch / step_size));
}

double multistep_lr(double base, const std::vector<int64_t>& milestones, double gamma,
                    const std::vector<double>& gammas, int64_t epoch) {
  const int64_t k = passed_milestones(milestones, epoch);
  if (gammas.empty()) return base * std::pow(gamma, static_cast<double>(k));
  double lr = base;
  for (int64_t i = 0; i < k; ++i) lr *= gammas[static_cast<size_t>(i)];
  return lr;
}

namespace {
// The period [last, next) of the milestones containing epoch `e` (k = index).
struct Period {
  int64_t k, last, next;
};
Period period_of(const std::vector<int64_t>& milestones, int64_t epochs, int64_t e) {
  const int64_t k = passed_milestones(milestones, e);
  const int64_t n = static_cast<int64_t>(milestones.size());
  const int64_t last = k == 0 ? 0 : milestones[static_cast<size_t>(k - 1)];
  const int64_t next = k < n ? milestones[static_cast<size_t>(k)] : epochs;
  return {k, last, next};
}
}  // namespace

double poly_lr(double base, double eta_min, double power, const std::vector<int64_t>& milestones,
               int64_t epochs, double x) {
  const Period p = period_of(milestones, epochs, static_cast<int64_t>(std::floor(x)));
  const double length = static_cast<double>(p.next - p.last);
  if (length <= 0.0) return eta_min;  // past the end of training (extra epochs)
  const double frac = 1.0 - (x - static_cast<double>(p.last)) / length;
  return eta_min + (base - eta_min) * std::pow(std::max(frac, 0.0), power);
}

double cosine_lr(double base, double eta_min, double gamma, bool chainable,
                 const std::vector<int64_t>& milestones, int64_t epochs, const Position& pos) {
  const Period p = period_of(milestones, epochs, pos.epoch);
  if (chainable && p.k > 0) return eta_min;
  const double T = static_cast<double>((p.next - p.last) * pos.iters_per_epoch);
  if (T <= 0.0) return eta_min;
  const double t = static_cast<double>((pos.epoch - p.last) * pos.iters_per_epoch + pos.iter);
  const double base_k = base * std::pow(gamma, static_cast<double>(p.k));
  const double pi = std::acos(-1.0);
  return eta_min + (base_k - eta_min) * (1.0 + std::cos(pi * std::min(t / T, 1.0))) / 2.0;
}

void check_milestones(const std::vector<int64_t>& milestones, const char* key) {
  for (size_t i = 0; i < milestones.size(); ++i) {
    if (milestones[i] <= 0)
      qsdk::config_error(key, "milestone " + std::to_string(milestones[i]) + " must be > 0",
                         "milestones are epochs where a new lr period starts");
    if (i > 0 && milestones[i] <= milestones[i - 1])
      qsdk::config_error(key, "milestones must be strictly increasing (" +
                                  std::to_string(milestones[i - 1]) + " then " +
                                  std::to_string(milestones[i]) + ")",
                         "a repeated milestone gives a zero-length period");
  }
}

}  // namespace qplug_scheduler_common
