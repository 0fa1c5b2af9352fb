// data_loader.hpp - batches from a qsdk::Dataset: worker threads, prefetch,
// seeded per-epoch shuffle, DistributedSampler-style rank shards.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/dataset.hpp>
#include <qsdk/trick.hpp>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace qhost {

/// How a DataLoader batches, shuffles and shards.
///
/// Example:
/// ```
/// qhost::DataLoaderOptions o;
/// o.batch_size = 256; o.workers = 4; o.seed = 42; o.rank = 1; o.world_size = 8;
/// ```
struct DataLoaderOptions {
  int64_t batch_size = 128;  ///< samples per batch (per rank)
  int64_t workers = 2;       ///< loading threads; 0 = load in the thread calling next()
  int64_t prefetch = 4;      ///< batches loaded ahead of the consumer (>= 1)
  bool shuffle = true;       ///< seeded per-epoch permutation (train); false = dataset order
  bool drop_last = true;     ///< drop the last partial batch, and trim (not pad) the rank shards
  uint64_t seed = 0;         ///< shuffle and augmentation seed
  int64_t rank = 0;          ///< this process's rank
  int64_t world_size = 1;    ///< number of ranks
  /// Pad or trim the rank shards to equal size (training, as DistributedSampler);
  /// false gives evaluation shards that cover every sample exactly once (uneven).
  bool even_shards = true;
  /// Seconds next() waits for a batch from the workers before it throws
  /// qsdk::Error(data) (0 = wait forever). The stuck workers are abandoned
  /// (detached), so the error reaches the caller even if they never return.
  /// With workers = 0 the batch is loaded in the caller's thread: no limit.
  int64_t wait_timeout_s = 0;
};

/// Iterates over a dataset in batches {input [N, C, H, W] float, target [N]
/// int64}.
///
/// Order: a permutation of all indices drawn from (seed, epoch), the same on
/// every rank; then, as torch's DistributedSampler, padded by wrapping around
/// (drop_last = false) or trimmed (drop_last = true) to a multiple of
/// world_size, and rank r takes positions r, r + w, r + 2w, ...
///
/// Sample i of epoch e is augmented with a generator seeded from (seed, e, i),
/// so batches are identical for any number of workers. Workers load whole
/// batches, at most `prefetch` ahead of the consumer, and batches come out in
/// order. An exception thrown while loading is rethrown by next() at that
/// batch's turn (a qsdk::Error gains the sample index); the epoch then ends.
/// Starting a new epoch or destroying the loader stops and joins the workers.
class DataLoader {
 public:
  /// A loader over `dataset`; throws qsdk::Error(config) on bad options.
  DataLoader(std::shared_ptr<qsdk::Dataset> dataset, DataLoaderOptions options);
  /// Stops and joins the workers.
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Begins epoch `epoch` (reshuffles; abandons what is left of the previous one).
  void start_epoch(int64_t epoch);
  /// The next batch of the epoch, or nullopt at its end. Starts epoch 0 if no
  /// epoch was started.
  std::optional<qsdk::Batch> next();
  /// Batches next() yields per epoch on this rank.
  int64_t batches_per_epoch() const;
  /// Samples per epoch on this rank (after padding/trimming, before drop_last).
  int64_t samples_per_rank() const;
  /// The dataset.
  const std::shared_ptr<qsdk::Dataset>& dataset() const { return dataset_; }
  /// The options.
  const DataLoaderOptions& options() const { return options_; }

  /// This rank's sample indices for `epoch` of a dataset of `size` samples.
  static std::vector<int64_t> shard_indices(int64_t size, const DataLoaderOptions& options, int64_t epoch);
  /// Seed of sample `index`'s generator in `epoch`.
  static uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index);

 private:
  struct Slot {
    std::optional<qsdk::Batch> batch;
    std::exception_ptr error;
  };
  // Recycled memory of the batches' input tensors; shared with the tensors'
  // deleters, so it outlives the loader while a batch is still held.
  struct BufferPool;
  qsdk::Batch load_batch(int64_t batch) const;
  void worker_loop();
  void stop_workers();

  std::shared_ptr<qsdk::Dataset> dataset_;
  DataLoaderOptions options_;
  std::vector<int64_t> sample_shape_;
  int64_t sample_numel_ = 0;  // elements of one sample
  int64_t num_classes_ = 0;
  std::shared_ptr<BufferPool> pool_;

  // Current epoch; guarded by mutex_ while workers run.
  int64_t epoch_ = -1;
  std::vector<int64_t> indices_;
  int64_t num_batches_ = 0;
  int64_t next_issue_ = 0;
  int64_t next_consume_ = 0;
  bool stop_ = false;
  bool failed_ = false;
  std::map<int64_t, Slot> ready_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable ready_cv_;
  std::vector<std::thread> threads_;
  int64_t stall_batch_ = -1;  // test hook QTOOL_TEST_DATA_STALL_AT_BATCH: never deliver this batch
};

}  // namespace qhost
