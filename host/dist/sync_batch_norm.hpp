// sync_batch_norm.hpp - batch norm whose training statistics are computed over
// every rank's batch (`[distributed] sync_bn = true`).
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/nn/pimpl.h>

namespace qhost {

/// Drop-in for torch::nn::BatchNorm2d with the same parameters and buffers
/// (weight, bias, running_mean, running_var, num_batches_tracked), so
/// checkpoints are interchangeable.
///
/// In training with more than one rank, the per-channel mean and variance are
/// those of the union of all ranks' batches (local two-pass moments combined in
/// double precision by one all-reduce), the running statistics use the global
/// unbiased variance, and backward all-reduces Σdy and Σdy·(x−μ), as PyTorch's
/// SyncBatchNorm does — so N ranks × batch B compute what one process computes
/// on batch N·B. With one rank, or in eval mode, it is exactly BatchNorm2d.
class SyncBatchNorm2dImpl : public torch::nn::Cloneable<SyncBatchNorm2dImpl> {
 public:
  /// Same options as BatchNorm2d.
  explicit SyncBatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& options);
  void reset() override;
  /// Normalises [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::BatchNorm2dOptions options;  ///< as given
  torch::Tensor weight, bias;              ///< affine parameters (undefined unless affine)
  torch::Tensor running_mean, running_var, num_batches_tracked;  ///< running statistics
};
TORCH_MODULE(SyncBatchNorm2d);

}  // namespace qhost
