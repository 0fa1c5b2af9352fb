// Label smoothing (Szegedy et al. 2016), as the reference's `label-smooth` keyword.
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

namespace qplug_label_smoothing {

struct LabelSmoothingOptions {
  double epsilon = 0.1;
  static qsdk::Schema<LabelSmoothingOptions> schema() {
    return qsdk::Schema<LabelSmoothingOptions>(
               "Label smoothing: train against (1-eps)*target + eps/K (validation keeps plain CE)")
        .field("epsilon", &LabelSmoothingOptions::epsilon, "smoothing mass spread over all K classes")
        .range(0.0, 1.0);
  }
};

/// Replaces the training loss by cross-entropy against the smoothed target.
/// A soft target set by an earlier trick (mixup) is smoothed instead of the
/// one-hot labels, so the two compose in either order.
class LabelSmoothing : public qsdk::Trick {
 public:
  LabelSmoothing(LabelSmoothingOptions options, const qsdk::TrickContext&) : options_(options) {}

  torch::Tensor transform_loss(const torch::Tensor&, const torch::Tensor& logits, const qsdk::Batch& batch,
                               const qsdk::StepInfo&) override {
    const int64_t classes = logits.size(1);
    torch::Tensor target = batch.soft_target.defined()
                               ? batch.soft_target
                               : torch::one_hot(batch.target, classes).to(logits.scalar_type());
    torch::Tensor smoothed = target * (1.0 - options_.epsilon) + options_.epsilon / static_cast<double>(classes);
    return -(smoothed * torch::log_softmax(logits, 1)).sum(1).mean();
  }

 private:
  LabelSmoothingOptions options_;
};

}  // namespace qplug_label_smoothing

QSDK_PLUGIN("label_smoothing", "0.1.0", "Label smoothing regularisation") {
  using namespace qplug_label_smoothing;
  registrar.add_trick<LabelSmoothing, LabelSmoothingOptions>("label_smoothing");
}
