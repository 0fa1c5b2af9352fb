// Knowledge distillation (Hinton et al. 2015) with the losses of the
// reference's newer utilities (docs/training.md#losses): soft, soft-b and hard.
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include <filesystem>

namespace qplug_kd {

/// The distillation term D of docs/training.md#losses.
enum class KdLoss {
  soft,    ///< "soft": T^2 KL, mean over B*K
  soft_b,  ///< "soft-b": soft cross-entropy
  hard,    ///< "hard": cross-entropy to the teacher's argmax
};

struct KdOptions {
  qsdk::Table teacher;
  std::string checkpoint;
  double alpha = 0.5;
  double temperature = 1.0;
  KdLoss loss = KdLoss::soft;
  static qsdk::Schema<KdOptions> schema() {
    return qsdk::Schema<KdOptions>("Knowledge distillation from a full-precision teacher")
        .component("teacher", &KdOptions::teacher, qsdk::Kind::model,
                   "teacher model table, as in [model] (type and options)")
        .required()
        .field("checkpoint", &KdOptions::checkpoint, "HDF5 checkpoint of the teacher (relative to the TOML file)")
        .required()
        .path()
        .field("alpha", &KdOptions::alpha, "weight of the distillation term; CE gets 1-alpha (omitted at 1)")
        .range(0.0, 1.0)
        .field("temperature", &KdOptions::temperature, "softmax temperature T")
        .range(1e-3, 1e3)
        .field("loss", &KdOptions::loss, "soft: T^2 KL (mean over B*K); soft-b: soft cross-entropy; hard: CE to argmax",
               {{"soft", KdLoss::soft}, {"soft-b", KdLoss::soft_b}, {"hard", KdLoss::hard}});
  }
};

/// Distillation term D(student, teacher) of docs/training.md#losses.
inline torch::Tensor distillation_term(const torch::Tensor& student, const torch::Tensor& teacher, KdLoss kind,
                                       double temperature) {
  if (kind == KdLoss::hard) return torch::nn::functional::cross_entropy(student, teacher.argmax(1));
  auto log_p_s = torch::log_softmax(student / temperature, 1);
  auto p_t = torch::softmax(teacher / temperature, 1);
  if (kind == KdLoss::soft_b) return -(p_t * log_p_s).sum(1).mean();
  // PyTorch's KLDivLoss default reduction is the mean over all B*K elements.
  auto kl = p_t * (torch::log(p_t.clamp_min(1e-30)) - log_p_s);
  return kl.mean() * (temperature * temperature);
}

/// Runs the teacher once per batch (eval mode, no gradients) on the batch the
/// student sees (after earlier tricks such as mixup) and mixes its term into the loss.
class KnowledgeDistillation : public qsdk::Trick {
 public:
  KnowledgeDistillation(KdOptions options, const qsdk::TrickContext& context) : options_(std::move(options)) {
    if (!context.load_model)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, "trick/kd", "this host cannot load teacher models");
    std::filesystem::path ckpt(options_.checkpoint);
    if (ckpt.is_relative() && !context.config_dir.empty()) ckpt = std::filesystem::path(context.config_dir) / ckpt;
    // The host's loader reports a missing or foreign file; say what the file is for
    // and how its path was resolved.
    try {
      teacher_ = context.load_model(options_.teacher, ckpt.string());
    } catch (const qsdk::Error& e) {
      if (e.category() != qsdk::ErrorCategory::checkpoint) throw;
      std::error_code ec;
      const bool missing = !std::filesystem::exists(ckpt, ec);
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, e.place(),
                        "teacher checkpoint (checkpoint = \"" + options_.checkpoint + "\"" +
                            (ckpt.string() != options_.checkpoint ? ", relative to the experiment file's folder" : "") +
                            "): " + e.message(),
                        missing ? "train the full-precision teacher first (qhost run <fp experiment>) and point the "
                                  "kd [[trick]]'s checkpoint at its best.h5"
                                : e.hint());
    }
    teacher_->eval();
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  }

  void transform_batch(qsdk::Batch& batch, const qsdk::StepInfo&) override {
    torch::NoGradGuard no_grad;
    teacher_->to(batch.input.device());
    teacher_logits_ = teacher_->forward(batch.input).detach();
  }

  torch::Tensor transform_loss(const torch::Tensor& loss, const torch::Tensor& logits, const qsdk::Batch&,
                               const qsdk::StepInfo&) override {
    if (!teacher_logits_.defined())
      throw qsdk::Error(qsdk::ErrorCategory::runtime, "trick/kd", "loss requested before the teacher ran on the batch");
    auto d = distillation_term(logits, teacher_logits_, options_.loss, options_.temperature);
    teacher_logits_ = torch::Tensor();
    if (options_.alpha >= 1.0) return d * options_.alpha;
    return loss * (1.0 - options_.alpha) + d * options_.alpha;
  }

 private:
  KdOptions options_;
  std::shared_ptr<qsdk::ModelImpl> teacher_;
  torch::Tensor teacher_logits_;
};

}  // namespace qplug_kd

QSDK_PLUGIN("kd", "0.1.0", "Knowledge distillation") {
  using namespace qplug_kd;
  registrar.add_trick<KnowledgeDistillation, KdOptions>("kd");
}
