// mixup (Zhang et al. 2018) with the reference's per-sample mixing weights.
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <random>

namespace qplug_mixup {

struct MixupOptions {
  double alpha = 0.7;
  bool per_sample = true;
  int64_t seed = 0;
  static qsdk::Schema<MixupOptions> schema() {
    return qsdk::Schema<MixupOptions>("mixup: train on convex combinations of sample pairs and their labels")
        .field("alpha", &MixupOptions::alpha, "Beta(alpha, alpha) distribution of the mixing weight")
        .range(1e-6, 1e6)
        .field("per_sample", &MixupOptions::per_sample,
               "one weight per sample (the reference's loss) instead of one per batch")
        .field("seed", &MixupOptions::seed, "offset added to the step number to seed the draws");
  }
};

/// Draws from Beta(a, a) as X/(X+Y) with X, Y ~ Gamma(a, 1).
inline double sample_beta(std::mt19937_64& rng, double a) {
  std::gamma_distribution<double> gamma(a, 1.0);
  const double x = gamma(rng);
  const double y = gamma(rng);
  return (x + y) > 0 ? x / (x + y) : 0.5;
}

/// Mixes each sample with a randomly permuted partner: x_i <- l_i x_i + (1-l_i) x_p(i)
/// and sets the soft target l_i onehot(y_i) + (1-l_i) onehot(y_p(i)), so the
/// cross-entropy against it is exactly the reference's mixed loss
/// -l_i log p(y_i) - (1-l_i) log p(y_p(i)).
class Mixup : public qsdk::Trick {
 public:
  Mixup(MixupOptions options, const qsdk::TrickContext& context)
      : options_(options), num_classes_(context.num_classes) {}

  void transform_batch(qsdk::Batch& batch, const qsdk::StepInfo& step) override {
    const int64_t n = batch.input.size(0);
    // Seeded by the global step, so a resumed run draws the same weights.
    std::mt19937_64 rng(static_cast<uint64_t>(options_.seed) * 1000003ULL + static_cast<uint64_t>(step.global_step));
    std::vector<int64_t> perm(n);
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<float> lambdas(n);
    const double shared = sample_beta(rng, options_.alpha);
    for (int64_t i = 0; i < n; ++i)
      lambdas[i] = static_cast<float>(options_.per_sample ? sample_beta(rng, options_.alpha) : shared);
    auto index = torch::tensor(perm, torch::kLong).to(batch.input.device());
    auto lam = torch::tensor(lambdas).to(batch.input.device());
    std::vector<int64_t> view(batch.input.dim(), 1);
    view[0] = n;
    auto lam_x = lam.view(view).to(batch.input.scalar_type());
    batch.input = lam_x * batch.input + (1 - lam_x) * batch.input.index_select(0, index);
    const int64_t classes = batch.soft_target.defined() ? batch.soft_target.size(1) : num_classes_;
    if (classes <= 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "trick/mixup", "number of classes unknown");
    auto target = batch.soft_target.defined()
                      ? batch.soft_target
                      : torch::one_hot(batch.target, classes).to(torch::kFloat).to(batch.input.device());
    auto lam_t = lam.view({n, 1}).to(target.scalar_type());
    batch.soft_target = lam_t * target + (1 - lam_t) * target.index_select(0, index);
  }

  torch::Tensor transform_loss(const torch::Tensor&, const torch::Tensor& logits, const qsdk::Batch& batch,
                               const qsdk::StepInfo&) override {
    return -(batch.soft_target.to(logits.scalar_type()) * torch::log_softmax(logits, 1)).sum(1).mean();
  }

 private:
  MixupOptions options_;
  int64_t num_classes_;
};

}  // namespace qplug_mixup

QSDK_PLUGIN("mixup", "0.1.0", "mixup data augmentation") {
  using namespace qplug_mixup;
  registrar.add_trick<Mixup, MixupOptions>("mixup");
}
