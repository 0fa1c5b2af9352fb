// trainer.hpp - the epoch loop (docs/training.md#epoch-loop-and-training-step): per-iteration lr, trick
// hooks, metrics, evaluation, best/last checkpoints and exact resume.
#pragma once

#include "checkpoint/checkpoint.hpp"
#include "data/data_loader.hpp"
#include "platform/device.hpp"
#include "train/metrics.hpp"
#include "train/optimizer.hpp"
#include "train/run_folder.hpp"

#include <qsdk/model.hpp>
#include <qsdk/scheduler.hpp>
#include <qsdk/trick.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qhost {

class PolicySchedule;
class Communicator;
class GradReducer;

/// The built pieces a Trainer drives.
struct TrainerParts {
  std::shared_ptr<qsdk::ModelImpl> model;           ///< the classifier
  std::unique_ptr<DataLoader> train_loader;         ///< training batches (may be null for eval only)
  std::unique_ptr<DataLoader> eval_loader;          ///< evaluation batches (may be null: no evaluation)
  std::unique_ptr<Optimizer> optimizer;             ///< may be null for eval only
  std::shared_ptr<qsdk::Scheduler> scheduler;       ///< null = constant lr
  std::vector<std::shared_ptr<qsdk::Trick>> tricks; ///< in TOML order
  std::vector<std::string> trick_names;             ///< "trick/mixup" etc. for error messages
  std::shared_ptr<PolicySchedule> schedule;         ///< (sweep) `[[schedule]]` changes; null = none
  std::shared_ptr<Communicator> comm;               ///< (distributed) the ranks; null = one process
};

/// How the loop runs.
struct TrainerSettings {
  int64_t epochs = 1;               ///< total epochs
  int64_t max_steps_per_epoch = 0;  ///< 0 = whole loader
  int64_t eval_every = 1;           ///< evaluate every N epochs (and after the last)
  int64_t save_every = 1;           ///< write last.h5 every N epochs (and after the last)
  int64_t log_every = 50;           ///< a metrics.jsonl line every N steps (0 = none)
  int64_t max_eval_batches = 0;     ///< 0 = whole evaluation set
  bool smoke = false;               ///< two steps, two eval batches, one epoch
  std::string device = "cpu";       ///< a resolved device: "cpu", "cuda:0", ... (resolve_device)
  Precision precision = Precision::fp32;  ///< autocast precision of forward passes (docs/training.md#devices-and-precision)
  bool channels_last = false;       ///< NHWC weights and input batches
  std::string resolved_toml;        ///< stored in every checkpoint
  std::optional<RunFolder> folder;  ///< where files go; nullopt = write nothing
  /// Test hook: return after this many epochs are done and saved, as if the
  /// process had been stopped there (0 = off; QTOOL_TEST_STOP_AFTER_EPOCHS).
  int64_t stop_after_epochs = 0;
  /// Test hook: this rank kills itself (SIGKILL) before this global step
  /// (-1 = off; QTOOL_TEST_KILL_RANK / QTOOL_TEST_KILL_AT_STEP).
  int64_t kill_at_step = -1;
  int kill_signal = 9;  ///< the signal of kill_at_step (QTOOL_TEST_KILL_SIGNAL; 19 = SIGSTOP, a hung rank)
  /// Test hook: SIGKILL this process between writing best.h5 and last.h5 at the
  /// end of this epoch (1-based; 0 = off; QTOOL_TEST_KILL_BETWEEN_SAVES).
  int64_t kill_between_saves_epoch = 0;
  /// --reset-optimizer: resume from a checkpoint without optimizer state
  /// (momentum restarts from zero) instead of refusing it.
  bool reset_optimizer = false;
  int64_t bucket_bytes = 25 << 20;       ///< (distributed) gradient bucket size
  int64_t first_bucket_bytes = 1 << 20;  ///< (distributed) first bucket, small so communication starts early
  bool broadcast_buffers = true;         ///< (distributed) rank 0's buffers to all after every step
  int64_t verify_every = 0;              ///< (distributed) compare every rank's model with rank 0's every N steps
};

/// Loss and accuracy of one pass.
struct EvalResult {
  double loss = 0.0;    ///< mean cross-entropy
  double top1 = 0.0;    ///< percent
  double top5 = 0.0;    ///< percent
  int64_t samples = 0;  ///< samples evaluated
};

/// Trains and evaluates; see docs/design.md#trainer.
class Trainer {
 public:
  /// Takes ownership of the parts.
  Trainer(TrainerParts parts, TrainerSettings settings);
  ~Trainer();

  /// Restores model, optimizer, RNG, epoch/step, best top-1 and the metric
  /// history from a checkpoint written by this trainer (strict). A checkpoint
  /// without the optimizer state this optimizer keeps is refused unless
  /// TrainerSettings::reset_optimizer. The best top-1 is the larger of the
  /// checkpoint's and that of the run folder's best.h5 (which may be newer).
  void resume_from(const std::string& path, bool allow_nonfinite = false);
  /// Runs the remaining epochs; returns the last evaluation (if any).
  std::optional<EvalResult> fit();
  /// Evaluates on the evaluation loader (model in eval mode, no gradients):
  /// its first `max_batches` batches (0 = all). When `logits` is given, each
  /// batch's float32 logits (on the CPU, in the loader's order) are appended to
  /// it (`qhost eval --dump-logits`).
  EvalResult evaluate(int64_t max_batches = 0, std::vector<torch::Tensor>* logits = nullptr);

  /// Epochs completed.
  int64_t epoch() const { return epoch_; }
  /// Optimizer steps completed.
  int64_t global_step() const { return global_step_; }
  /// Best evaluation top-1 so far.
  double best_top1() const { return best_top1_; }
  /// The model.
  const std::shared_ptr<qsdk::ModelImpl>& model() const { return parts_.model; }
  /// Everything for a checkpoint of the current state.
  CheckpointData snapshot() const;

 private:
  void train_epoch(int64_t epoch, int64_t iters);
  void save(const std::string& path) const;
  bool distributed() const;
  // Broadcasts rank 0's model and (re)installs the gradient reducer on the current parameters.
  void setup_data_parallel(bool announce);
  // Throws when any rank's parameters or buffers differ from rank 0's.
  void verify_replicas();
  // Sums `values` over ranks in place (no-op in one process).
  void all_reduce(std::vector<double>& values);

  TrainerParts parts_;
  TrainerSettings settings_;
  torch::Device device_{torch::kCPU};  // settings_.device, parsed
  LossScaler scaler_{false};           // fp16 dynamic loss scaling (disabled otherwise)
  std::unique_ptr<MetricsLog> metrics_;
  std::string metrics_seed_;
  ProgressLine progress_;
  int64_t epoch_ = 0;
  int64_t global_step_ = 0;
  double best_top1_ = 0.0;
  std::unique_ptr<GradReducer> reducer_;  // (distributed) gradient averaging
  std::vector<torch::Tensor> state_;      // (distributed) buffers and frozen parameters kept equal on all ranks
  double comm_seconds_ = 0.0;             // (distributed) exposed all-reduce wait this epoch
};

/// Cross-entropy of logits against class targets, or against a soft target
/// distribution when the batch has one (mixup).
torch::Tensor classification_loss(const torch::Tensor& logits, const qsdk::Batch& batch);

}  // namespace qhost
