// The scheduler formulas of docs/training.md#learning-rate-policies / docs/training.md#warm-up-mechanisms against
// hand-computed values.
#include "lr_formulas.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

#include <cmath>

namespace c = qplug_scheduler_common;

TEST(SchedulerFormulas, StepDecaysEveryStepSize) {
  EXPECT_DOUBLE_EQ(c::step_lr(0.1, 30, 0.1, 0), 0.1);
  EXPECT_DOUBLE_EQ(c::step_lr(0.1, 30, 0.1, 29), 0.1);
  EXPECT_NEAR(c::step_lr(0.1, 30, 0.1, 30), 0.01, 1e-15);
  EXPECT_NEAR(c::step_lr(0.1, 30, 0.1, 61), 0.001, 1e-15);
  EXPECT_NEAR(c::step_lr(0.5, 2, 0.98, 5), 0.5 * 0.98 * 0.98, 1e-15);
}

TEST(SchedulerFormulas, MultistepCountsMilestonesUpToEpoch) {
  const std::vector<int64_t> m{60, 120, 160};
  EXPECT_DOUBLE_EQ(c::multistep_lr(0.1, m, 0.2, {}, 59), 0.1);
  EXPECT_NEAR(c::multistep_lr(0.1, m, 0.2, {}, 60), 0.02, 1e-15);
  EXPECT_NEAR(c::multistep_lr(0.1, m, 0.2, {}, 120), 0.004, 1e-15);
  EXPECT_NEAR(c::multistep_lr(0.1, m, 0.2, {}, 199), 0.0008, 1e-15);
  // One factor per milestone.
  EXPECT_NEAR(c::multistep_lr(1.0, {2, 4}, 0.1, {0.5, 0.1}, 3), 0.5, 1e-15);
  EXPECT_NEAR(c::multistep_lr(1.0, {2, 4}, 0.1, {0.5, 0.1}, 4), 0.05, 1e-15);
}

TEST(SchedulerFormulas, PolyWithRestarts) {
  // No milestones: one period over all epochs; power 1 = linear.
  EXPECT_DOUBLE_EQ(c::poly_lr(0.1, 0.0, 1.0, {}, 10, 0), 0.1);
  EXPECT_NEAR(c::poly_lr(0.1, 0.0, 1.0, {}, 10, 5), 0.05, 1e-15);
  EXPECT_NEAR(c::poly_lr(0.1, 0.0, 1.0, {}, 10, 9), 0.01, 1e-15);
  // Power 2 with eta_min: 0.001 + 0.099 * (1 - 3/10)^2.
  EXPECT_NEAR(c::poly_lr(0.1, 0.001, 2.0, {}, 10, 3), 0.001 + 0.099 * 0.49, 1e-15);
  // Restarts at 4 and 6 over 10 epochs: segments [0,4) length 4, [4,6) length 2, [6,10) length 4.
  const std::vector<int64_t> m{4, 6};
  EXPECT_NEAR(c::poly_lr(1.0, 0.0, 1.0, m, 10, 3), 0.25, 1e-15);
  EXPECT_NEAR(c::poly_lr(1.0, 0.0, 1.0, m, 10, 4), 1.0, 1e-15);
  EXPECT_NEAR(c::poly_lr(1.0, 0.0, 1.0, m, 10, 5), 0.5, 1e-15);
  EXPECT_NEAR(c::poly_lr(1.0, 0.0, 1.0, m, 10, 7), 0.75, 1e-15);
  // Fractional epochs (per-iteration evaluation).
  EXPECT_NEAR(c::poly_lr(1.0, 0.0, 1.0, m, 10, 4.5), 0.75, 1e-15);
}

TEST(SchedulerFormulas, CosineClosedFormPerIteration) {
  // Example of docs/training.md#learning-rate-policies: a period of 3 steps from 0.1 to eta_min 0.001 gives 0.1,
  // 0.07525, 0.02575.
  const std::vector<int64_t> m{1};  // period [0, 1) of 3 iterations, then [1, 2)
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, false, m, 2, {0, 0, 3}), 0.1, 1e-12);
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, false, m, 2, {0, 1, 3}), 0.07525, 1e-12);
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, false, m, 2, {0, 2, 3}), 0.02575, 1e-12);
  // Closed form restarts at the milestone; chainable stays at eta_min.
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, false, m, 2, {1, 0, 3}), 0.1, 1e-12);
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, true, m, 2, {1, 0, 3}), 0.001, 1e-12);
  EXPECT_NEAR(c::cosine_lr(0.1, 0.001, 1.0, true, m, 2, {0, 1, 3}), 0.07525, 1e-12);
  // sgdr_step: period k starts at lr0 * gamma^k.
  EXPECT_NEAR(c::cosine_lr(0.1, 0.0, 0.1, false, m, 2, {1, 0, 3}), 0.01, 1e-12);
  // Two-epoch period of 3 iterations each: t = 4 of T = 6 -> (1 + cos(2pi/3)) / 2 = 0.25.
  EXPECT_NEAR(c::cosine_lr(1.0, 0.0, 1.0, false, {}, 2, {1, 1, 3}), 0.25, 1e-12);
}

TEST(SchedulerFormulas, LinearWarmupReachesThePolicyValue) {
  auto constant = [](const c::Position&) { return 0.4; };
  const c::Warmup w{2.0, 0.0};  // 2 epochs of 5 iterations = 10 iterations
  EXPECT_DOUBLE_EQ(c::with_warmup(w, {0, 0, 5}, constant), 0.0);
  EXPECT_NEAR(c::with_warmup(w, {0, 1, 5}, constant), 0.04, 1e-15);
  EXPECT_NEAR(c::with_warmup(w, {1, 0, 5}, constant), 0.2, 1e-15);
  EXPECT_NEAR(c::with_warmup(w, {1, 4, 5}, constant), 0.36, 1e-15);
  EXPECT_DOUBLE_EQ(c::with_warmup(w, {2, 0, 5}, constant), 0.4);
  // From a non-zero warmup_lr towards a decaying policy: target is the policy at the end.
  auto poly = [](const c::Position& p) { return c::poly_lr(1.0, 0.0, 1.0, {}, 10, p.epoch); };
  EXPECT_NEAR(c::with_warmup({1.0, 0.1}, {0, 2, 4}, poly), 0.1 + (0.9 - 0.1) * 0.5, 1e-15);
  // No warm-up: the policy itself.
  EXPECT_DOUBLE_EQ(c::with_warmup({0.0, 0.0}, {0, 0, 4}, constant), 0.4);
}

TEST(SchedulerFormulas, MilestonesMustIncrease) {
  EXPECT_NO_THROW(c::check_milestones({1, 2, 3}, "milestones"));
  EXPECT_THROW(c::check_milestones({3, 3}, "milestones"), qsdk::Error);
  EXPECT_THROW(c::check_milestones({0}, "milestones"), qsdk::Error);
  try {
    c::check_milestones({5, 2}, "milestones");
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::config);
    EXPECT_NE(std::string(e.what()).find("milestones"), std::string::npos);
  }
}
