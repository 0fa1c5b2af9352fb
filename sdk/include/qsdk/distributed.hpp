// qsdk/distributed.hpp - what a plugin needs to stay correct in a data-parallel
// run: collectives for statistics computed in forward, and batch norms made the
// way the run asks (plain or synchronised across ranks).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <torch/nn/modules/container/any.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace qsdk {

/// Collective operations over the ranks of a data-parallel run.
///
/// Every rank must make the same calls in the same order (as with any
/// collective). A plugin whose forward derives state from the batch (a
/// data-driven clip initialisation, a least-squares refit) averages its
/// statistics with all_reduce_mean_() so every rank computes the same state;
/// outside a distributed run these are no-ops on rank 0 of 1.
class QSDK_API Collectives {
 public:
  virtual ~Collectives();
  /// This process's rank, 0 ... world_size() - 1.
  virtual int64_t rank() const = 0;
  /// Number of ranks.
  virtual int64_t world_size() const = 0;
  /// Replaces `t` (a contiguous tensor, same shape on every rank) by its sum over ranks.
  virtual void all_reduce_sum_(torch::Tensor& t) = 0;
  /// Replaces `t` by its element-wise maximum over ranks.
  virtual void all_reduce_max_(torch::Tensor& t) = 0;
  /// Replaces `t` by its mean over ranks.
  void all_reduce_mean_(torch::Tensor& t);
};

/// The collectives of this process: the host's when it runs distributed, else
/// a single-rank stand-in whose operations do nothing.
QSDK_API Collectives& collectives();

/// (host) Installs the run's collectives; nullptr restores the single-rank stand-in.
QSDK_API void set_collectives(std::shared_ptr<Collectives> collectives);

/// Makes a 2-D batch norm with `options`. Models should make their batch norms
/// through this, so the host's `[distributed] sync_bn = true` reaches them: it
/// then returns a synchronised batch norm with the same parameters and buffers
/// (weight, bias, running_mean, running_var, num_batches_tracked), so checkpoints
/// do not depend on the choice. Default: torch::nn::BatchNorm2d.
QSDK_API torch::nn::AnyModule make_batch_norm2d(const torch::nn::BatchNorm2dOptions& options);

/// How make_batch_norm2d() builds a batch norm.
using BatchNorm2dMaker = std::function<torch::nn::AnyModule(const torch::nn::BatchNorm2dOptions&)>;

/// (host) Replaces the maker used by make_batch_norm2d(); an empty function restores the default.
QSDK_API void set_batch_norm2d_maker(BatchNorm2dMaker maker);

}  // namespace qsdk
