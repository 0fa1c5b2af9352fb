// qsdk/trick.hpp - training-loop hooks (kind `trick`).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace qsdk {

/// A mini-batch as the training step sees it.
struct QSDK_API Batch {
  torch::Tensor input;        ///< [N, C, H, W]
  torch::Tensor target;       ///< [N] int64 class indices
  torch::Tensor soft_target;  ///< optional [N, K] probabilities (mixup); undefined if unused
};

/// Where in training a hook is called.
struct QSDK_API StepInfo {
  int64_t epoch = 0;      ///< 0-based epoch
  int64_t iter = 0;       ///< 0-based iteration within the epoch
  int64_t global_step = 0;  ///< optimizer steps so far
  double lr = 0.0;        ///< current learning rate
};

/// Training-loop hooks. Tricks run in the order they are listed in the TOML;
/// every hook has a no-op default, so a trick overrides only what it uses.
class QSDK_API Trick {
 public:
  virtual ~Trick();
  /// Called at the start of every epoch.
  virtual void on_epoch_begin(int64_t epoch) { (void)epoch; }
  /// May rewrite the batch before the forward pass (mixup).
  virtual void transform_batch(Batch& batch, const StepInfo& step) {
    (void)batch;
    (void)step;
  }
  /// Transforms a layer's float weight before weight quantization (var-mean).
  virtual torch::Tensor transform_weight(const torch::Tensor& weight, const std::string& module_path) {
    (void)module_path;
    return weight;
  }
  /// May replace the loss (label smoothing, distillation). `loss` is what the
  /// host or an earlier trick computed.
  virtual torch::Tensor transform_loss(const torch::Tensor& loss, const torch::Tensor& logits,
                                       const Batch& batch, const StepInfo& step) {
    (void)logits;
    (void)batch;
    (void)step;
    return loss;
  }
  /// Called after each optimizer step.
  virtual void on_step_end(const StepInfo& step) { (void)step; }
};

}  // namespace qsdk
