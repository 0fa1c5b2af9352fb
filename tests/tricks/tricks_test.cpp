// The trick and SGDR plugins' math against values computed by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>

#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

namespace {

std::vector<std::string> plugin_dirs() {
  const char* env = std::getenv("QTOOL_PLUGIN_PATH");
  return {env ? env : "plugins"};
}

class TricksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new qhost::Registry();
    loader_ = new qhost::PluginLoader(*registry_, plugin_dirs());
    for (const char* name : {"label_smoothing", "mixup", "kd", "wt_varmean", "sgdr"}) loader_->load(name);
  }
  static qhost::Registry* registry_;
  static qhost::PluginLoader* loader_;

  std::shared_ptr<qsdk::Trick> trick(qsdk::Table options, qsdk::TrickContext ctx = {}) {
    return registry_->make_trick(options, ctx);
  }
  std::shared_ptr<qsdk::Scheduler> sgdr(qsdk::Table options, double base, int64_t epochs, int64_t iters) {
    options["type"] = "sgdr";
    qsdk::SchedulerContext ctx;
    ctx.base_lr = base;
    ctx.epochs = epochs;
    ctx.iters_per_epoch = iters;
    return registry_->make_scheduler(options, ctx);
  }
};
qhost::Registry* TricksTest::registry_ = nullptr;
qhost::PluginLoader* TricksTest::loader_ = nullptr;

double log_softmax_at(const std::vector<double>& z, size_t c) {
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  for (double v : z) s += std::exp(v - m);
  return z[c] - m - std::log(s);
}

TEST_F(TricksTest, LabelSmoothingMatchesHandComputedLoss) {
  auto t = trick({{"type", "label_smoothing"}, {"epsilon", 0.1}});
  qsdk::Batch batch;
  batch.target = torch::tensor({2, 0}, torch::kLong);
  auto logits = torch::tensor({{1.0f, 2.0f, 3.0f}, {0.5f, -1.0f, 0.0f}});
  std::vector<std::vector<double>> z{{1, 2, 3}, {0.5, -1, 0}};
  std::vector<int> y{2, 0};
  double expected = 0;
  for (int i = 0; i < 2; ++i)
    for (size_t c = 0; c < 3; ++c) {
      double target = (static_cast<int>(c) == y[i] ? 0.9 : 0.0) + 0.1 / 3;
      expected -= target * log_softmax_at(z[i], c);
    }
  expected /= 2;
  auto loss = t->transform_loss(torch::zeros({}), logits, batch, {});
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
}

TEST_F(TricksTest, MixupMixesInputsAndTargetsConsistently) {
  qsdk::TrickContext ctx;
  ctx.num_classes = 4;
  auto t = trick({{"type", "mixup"}, {"alpha", 0.7}}, ctx);
  qsdk::Batch batch;
  batch.input = torch::arange(4 * 3, torch::kFloat).view({4, 3});
  batch.target = torch::tensor({0, 1, 2, 3}, torch::kLong);
  auto original = batch.input.clone();
  qsdk::StepInfo step;
  step.global_step = 5;  // a step whose permutation moves every sample
  t->transform_batch(batch, step);
  ASSERT_TRUE(batch.soft_target.defined());
  auto soft = batch.soft_target;
  EXPECT_TRUE(torch::allclose(soft.sum(1), torch::ones({4})));
  bool some_mixed = false;
  for (int64_t i = 0; i < 4; ++i) {
    // Labels are distinct, so the soft target reveals lambda_i and the partner.
    const double lambda = soft[i][i].item<double>();
    int64_t partner = i;
    for (int64_t c = 0; c < 4; ++c)
      if (c != i && soft[i][c].item<double>() > 0) partner = c;
    auto expected = original[i] * lambda + original[partner] * (1 - lambda);
    EXPECT_TRUE(torch::allclose(batch.input[i], expected, 1e-5, 1e-5)) << "sample " << i;
    if (partner != i && lambda < 0.999) some_mixed = true;
  }
  EXPECT_TRUE(some_mixed) << soft;
  // Mixed loss = -lambda log p(y) - (1 - lambda) log p(y_perm), batch mean.
  auto logits = torch::tensor({{1.f, 0.f, 0.f, 0.f}, {0.f, 2.f, 0.f, 1.f}, {0.f, 0.f, 0.f, 0.f}, {3.f, 0.f, 1.f, 0.f}});
  auto loss = t->transform_loss(torch::zeros({}), logits, batch, step);
  auto logp = torch::log_softmax(logits, 1);
  double expected = 0;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 4; ++c) expected -= soft[i][c].item<double>() * logp[i][c].item<double>();
  EXPECT_NEAR(loss.item<double>(), expected / 4, 1e-6);
  // Same step, same draws (resume reproduces the mixing).
  qsdk::Batch again;
  again.input = original.clone();
  again.target = batch.target;
  t->transform_batch(again, step);
  EXPECT_TRUE(torch::equal(again.input, batch.input));
}

/// A fixed linear "teacher" so the distillation term can be computed by hand.
class FixedTeacher : public qsdk::ModelImpl {
 public:
  torch::Tensor forward(const torch::Tensor& x) override { return x * 2.0; }
};

TEST_F(TricksTest, KdSoftLossIsTemperatureScaledMeanKl) {
  qsdk::TrickContext ctx;
  std::string seen_path;
  ctx.config_dir = "/experiments";
  ctx.load_model = [&](const qsdk::Table& model, const std::string& path) {
    EXPECT_EQ(model.at("type").as_string(), "resnet");
    seen_path = path;
    return std::make_shared<FixedTeacher>();
  };
  const double T = 2.0, alpha = 0.25;
  auto t = trick({{"type", "kd"},
                  {"teacher", qsdk::Table{{"type", "resnet"}}},
                  {"checkpoint", "fp/best.h5"},
                  {"alpha", alpha},
                  {"temperature", T}},
                 ctx);
  EXPECT_EQ(seen_path, "/experiments/fp/best.h5");
  qsdk::Batch batch;
  batch.input = torch::tensor({{0.5f, -0.5f}});  // teacher logits (1, -1)
  batch.target = torch::tensor({0}, torch::kLong);
  t->transform_batch(batch, {});
  auto student = torch::tensor({{0.2f, 0.4f}});
  auto ce = torch::tensor(1.5f);
  auto loss = t->transform_loss(ce, student, batch, {});
  // Hand computation: p_t = softmax((1,-1)/2), log p_s = log_softmax((0.2,0.4)/2).
  double pt0 = std::exp(0.5) / (std::exp(0.5) + std::exp(-0.5)), pt1 = 1 - pt0;
  double ls0 = log_softmax_at({0.1, 0.2}, 0), ls1 = log_softmax_at({0.1, 0.2}, 1);
  double kl_mean = (pt0 * (std::log(pt0) - ls0) + pt1 * (std::log(pt1) - ls1)) / 2.0;  // mean over B*K = 2
  double expected = (1 - alpha) * 1.5 + alpha * T * T * kl_mean;
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
}

TEST_F(TricksTest, KdWithoutTeacherLoaderIsAClearError) {
  try {
    trick({{"type", "kd"}, {"teacher", qsdk::Table{{"type", "resnet"}}}, {"checkpoint", "x.h5"}});
    FAIL() << "expected an error";
  } catch (const qsdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("trick/kd"), std::string::npos) << e.what();
  }
}

TEST_F(TricksTest, WtVarmeanStandardisesWithDetachedUnbiasedStatistics) {
  auto t = trick({{"type", "wt_varmean"}});
  auto w = torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).view({2, 3, 1, 1}).requires_grad_();
  auto y = t->transform_weight(w, "layer1.0.conv1");
  const double mean = 3.5, std = std::sqrt(17.5 / 5.0);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y.view(-1)[i].item<double>(), (i + 1 - mean) / std, 1e-6);
  y.sum().backward();
  // Statistics are constants: d y / d w = 1/std for every element.
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full_like(w, 1.0 / std), 1e-6, 1e-6));

  auto tc = trick({{"type", "wt_varmean"}, {"granularity", "channel"}});
  auto yc = tc->transform_weight(w.detach(), "x");
  EXPECT_NEAR(yc.view({2, 3})[0][0].item<double>(), -1.0, 1e-6);  // (1-2)/1
  EXPECT_NEAR(yc.view({2, 3})[1][2].item<double>(), 1.0, 1e-6);   // (6-5)/1
}

TEST_F(TricksTest, SgdrRestartsAtMilestones) {
  // 4 epochs of 2 iterations, restart at epoch 2: two cycles of T = 4 iterations.
  auto s = sgdr({{"milestones", qsdk::List{2}}, {"eta_min", 0.0}}, 0.1, 4, 2);
  const double expected[] = {0.1, 0.0853553390593, 0.05, 0.0146446609407};
  for (int e = 0; e < 4; ++e)
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(s->lr(e, i), expected[(e % 2) * 2 + i], 1e-9) << e << "," << i;
}

TEST_F(TricksTest, SgdrPeriodMultiplierAndDecay) {
  // period 1, multiplier 2: cycles [0,1) and [1,3); restart_decay halves the base.
  auto s = sgdr({{"period", 1}, {"multiplier", 2.0}, {"restart_decay", 0.5}, {"eta_min", 0.01}}, 0.1, 3, 1);
  EXPECT_NEAR(s->lr(0, 0), 0.1, 1e-12);
  EXPECT_NEAR(s->lr(1, 0), 0.05, 1e-12);
  EXPECT_NEAR(s->lr(2, 0), 0.01 + (0.05 - 0.01) * 0.5, 1e-12);
}

TEST_F(TricksTest, SgdrCompatChainableNeverRestarts) {
  // The reference under PyTorch >= 1.4 (docs/training.md#learning-rate-policies): period of 3 steps from 0.1 with
  // eta_min 0.001 gives 0.1, 0.07525, 0.02575, then stays at 0.001.
  auto s = sgdr({{"milestones", qsdk::List{1}}, {"eta_min", 0.001}, {"compat_chainable", true}}, 0.1, 3, 3);
  EXPECT_NEAR(s->lr(0, 0), 0.1, 1e-9);
  EXPECT_NEAR(s->lr(0, 1), 0.07525, 1e-9);
  EXPECT_NEAR(s->lr(0, 2), 0.02575, 1e-9);
  EXPECT_NEAR(s->lr(1, 0), 0.001, 1e-12);
  EXPECT_NEAR(s->lr(2, 2), 0.001, 1e-12);
}

TEST_F(TricksTest, SgdrRejectsUnorderedMilestones) {
  EXPECT_THROW(sgdr({{"milestones", qsdk::List{3, 2}}}, 0.1, 4, 1), qsdk::Error);
}

}  // namespace
