// data_loader_test.cpp - qhost::DataLoader: shards, shuffling, determinism
// across worker counts, drop_last, error propagation, early shutdown.
// SPDX-License-Identifier: Apache-2.0
#include "data/data_loader.hpp"
#include "plugin_harness.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <numeric>
#include <set>
#include <thread>

#include <sys/resource.h>

using qhost::DataLoader;
using qhost::DataLoaderOptions;

namespace {

// Sample i: image [1, 2, 2] = {i, rng draw, rng draw, i}, label i % classes.
// Optionally throws at one index, or sleeps to shuffle worker timing.
class IndexDataset : public qsdk::Dataset {
 public:
  IndexDataset(int64_t n, int64_t classes = 10, int64_t throw_at = -1, bool jitter = false)
      : n_(n), classes_(classes), throw_at_(throw_at), jitter_(jitter) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return classes_; }
  std::vector<int64_t> sample_shape() const override { return {1, 2, 2}; }
  qsdk::Example get(int64_t index, std::mt19937_64& rng) const override {
    calls++;
    if (index == throw_at_)
      throw qsdk::Error(qsdk::ErrorCategory::data, "/data/bad-" + std::to_string(index), "cannot decode", "remove it");
    if (jitter_) std::this_thread::sleep_for(std::chrono::microseconds((index * 7919) % 300));
    qsdk::Example ex;
    ex.image = torch::tensor({static_cast<float>(index), static_cast<float>(rng() % 1000),
                              static_cast<float>(rng() % 1000), static_cast<float>(index)})
                   .reshape({1, 2, 2});
    ex.label = index % classes_;
    return ex;
  }
  mutable std::atomic<int64_t> calls{0};

 private:
  int64_t n_, classes_, throw_at_;
  bool jitter_;
};

// ImageNet-sized samples ([3, 224, 224] floats, 588 KiB) filled with
// index % 10, made once: the dataset allocates nothing per sample, so the
// page faults measured are the loader's own.
class BigSampleDataset : public qsdk::Dataset {
 public:
  explicit BigSampleDataset(int64_t n) : n_(n) {
    for (int v = 0; v < 10; ++v) samples_.push_back(torch::full({3, 224, 224}, static_cast<float>(v)));
  }
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> sample_shape() const override { return {3, 224, 224}; }
  qsdk::Example get(int64_t index, std::mt19937_64&) const override {
    qsdk::Example ex;
    ex.image = samples_[static_cast<size_t>(index % 10)];
    ex.label = index % 10;
    return ex;
  }

 private:
  int64_t n_;
  std::vector<torch::Tensor> samples_;
};

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

std::vector<qsdk::Batch> drain(DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<qsdk::Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

std::vector<int64_t> indices_of(const std::vector<qsdk::Batch>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches)
    for (int64_t i = 0; i < b.input.size(0); ++i)
      out.push_back(static_cast<int64_t>(b.input[i][0][0][0].item<float>()));
  return out;
}

}  // namespace

TEST(DataLoaderShards, PaddedShardsCoverEverythingOnce) {
  DataLoaderOptions o;
  o.world_size = 4;
  o.drop_last = false;
  o.seed = 3;
  std::map<int64_t, int> seen;
  for (int64_t r = 0; r < 4; ++r) {
    o.rank = r;
    const auto mine = DataLoader::shard_indices(103, o, 2);
    EXPECT_EQ(mine.size(), 26u);  // ceil(103 / 4)
    for (int64_t i : mine) seen[i]++;
  }
  EXPECT_EQ(seen.size(), 103u);
  int repeats = 0;
  for (auto [i, n] : seen) repeats += n - 1;
  EXPECT_EQ(repeats, 1);  // 104 - 103 padded by wrapping around
}

TEST(DataLoaderShards, TrimmedShardsAreDisjointAndOnePermutation) {
  DataLoaderOptions o;
  o.world_size = 4;
  o.drop_last = true;
  o.seed = 3;
  std::vector<std::vector<int64_t>> shards;
  std::set<int64_t> all;
  for (int64_t r = 0; r < 4; ++r) {
    o.rank = r;
    shards.push_back(DataLoader::shard_indices(103, o, 5));
    EXPECT_EQ(shards.back().size(), 25u);
    all.insert(shards.back().begin(), shards.back().end());
  }
  EXPECT_EQ(all.size(), 100u);  // disjoint
  // Interleaving the shards gives the single-rank permutation's first 100 entries.
  DataLoaderOptions single = o;
  single.world_size = 1;
  single.rank = 0;
  const auto perm = DataLoader::shard_indices(103, single, 5);
  for (size_t k = 0; k < 100; ++k) EXPECT_EQ(shards[k % 4][k / 4], perm[k]);
  // Seeded: same (seed, epoch) same order; another epoch or seed another order.
  EXPECT_EQ(DataLoader::shard_indices(103, single, 5), perm);
  EXPECT_NE(DataLoader::shard_indices(103, single, 6), perm);
  single.seed = 4;
  EXPECT_NE(DataLoader::shard_indices(103, single, 5), perm);
  single.shuffle = false;
  const auto seq = DataLoader::shard_indices(103, single, 5);
  for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(seq[i], i);
}

TEST(DataLoaderBatches, DropLastAndShapes) {
  auto ds = std::make_shared<IndexDataset>(10, 3);
  DataLoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  o.drop_last = true;
  DataLoader dl(ds, o);
  EXPECT_EQ(dl.batches_per_epoch(), 2);
  auto batches = drain(dl, 0);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].input.sizes(), (std::vector<int64_t>{4, 1, 2, 2}));
  EXPECT_EQ(batches[0].input.scalar_type(), torch::kFloat32);
  EXPECT_EQ(batches[0].target.scalar_type(), torch::kInt64);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(batches[1].target[i].item<int64_t>(),
              static_cast<int64_t>(batches[1].input[i][0][0][0].item<float>()) % 3);
  o.drop_last = false;
  DataLoader keep(ds, o);
  EXPECT_EQ(keep.batches_per_epoch(), 3);
  batches = drain(keep, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].input.size(0), 2);
  auto idx = indices_of(batches);
  std::sort(idx.begin(), idx.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(idx[i], i);
  EXPECT_FALSE(keep.next().has_value());  // stays at the end until the next epoch
}

TEST(DataLoaderBatches, SameBatchesForAnyWorkerCount) {
  auto ds = std::make_shared<IndexDataset>(157, 10, -1, /*jitter=*/true);
  std::vector<std::vector<qsdk::Batch>> runs;
  for (int64_t workers : {0, 1, 3}) {
    DataLoaderOptions o;
    o.batch_size = 8;
    o.workers = workers;
    o.prefetch = 2;
    o.drop_last = false;
    o.seed = 17;
    o.rank = 1;
    o.world_size = 2;
    DataLoader dl(ds, o);
    runs.push_back(drain(dl, 4));
  }
  ASSERT_EQ(runs[0].size(), 10u);  // ceil(ceil(157 / 2) / 8)
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      EXPECT_TRUE(torch::equal(runs[r][b].input, runs[0][b].input)) << "run " << r << " batch " << b;
      EXPECT_TRUE(torch::equal(runs[r][b].target, runs[0][b].target));
    }
  }
  // Augmentation differs between epochs.
  DataLoaderOptions o;
  o.batch_size = 8;
  o.shuffle = false;
  DataLoader dl(ds, o);
  auto e0 = drain(dl, 0), e1 = drain(dl, 1);
  EXPECT_TRUE(torch::equal(e0[0].input.select(1, 0).select(1, 0).select(1, 0),
                           e1[0].input.select(1, 0).select(1, 0).select(1, 0)));
  EXPECT_FALSE(torch::equal(e0[0].input, e1[0].input));
}

// Workers allocate the batches and the consumer frees them; glibc handed that
// memory back to the kernel between batches, so every batch page-faulted its
// ~4700 pages in again (a quarter of a worker's CPU time on the ImageNet
// pipeline, tools/bench/data_pipeline.cpp). Batch memory is now recycled.
TEST(DataLoaderBatches, WorkersDoNotPageFaultBatchMemoryInAgain) {
  auto ds = std::make_shared<BigSampleDataset>(256);
  for (int64_t workers : {1, 2}) {
    DataLoaderOptions o;
    o.batch_size = 32;
    o.workers = workers;
    o.prefetch = 4;
    DataLoader dl(ds, o);
    drain(dl, 0);  // warm-up: the first batches are new memory
    int64_t batches = 0;
    const long f0 = minor_faults();
    for (int64_t epoch = 1; epoch <= 4; ++epoch) {
      dl.start_epoch(epoch);
      while (auto b = dl.next()) {
        ++batches;
        const auto last = static_cast<int64_t>(b->input[31][2][223][223].item<float>());  // index % 10
        EXPECT_EQ(last, b->target[31].item<int64_t>());
      }
    }
    const double per_batch = static_cast<double>(minor_faults() - f0) / static_cast<double>(batches);
    const double pages = 32.0 * 3 * 224 * 224 * sizeof(float) / 4096.0;
    EXPECT_LT(per_batch, 0.1 * pages) << workers << " worker(s): " << per_batch << " page faults per batch of " << pages
                                      << " pages";
  }
}

// The recycled memory belongs to a pool the batches share: a batch stays
// valid after its loader is gone, and batches held by the consumer are never
// handed out again.
TEST(DataLoaderBatches, HeldBatchesKeepTheirMemory) {
  auto ds = std::make_shared<BigSampleDataset>(64);
  std::vector<qsdk::Batch> held;
  {
    DataLoaderOptions o;
    o.batch_size = 4;
    o.workers = 2;
    o.prefetch = 2;
    o.shuffle = false;
    DataLoader dl(ds, o);
    held = drain(dl, 0);  // 16 batches, more than the pool keeps
    auto again = drain(dl, 1);
    ASSERT_EQ(again.size(), 16u);
  }
  ASSERT_EQ(held.size(), 16u);
  std::set<const void*> buffers;
  for (size_t b = 0; b < held.size(); ++b) {
    buffers.insert(held[b].input.data_ptr());
    for (int64_t i = 0; i < 4; ++i) {
      const auto expected = static_cast<float>((4 * static_cast<int64_t>(b) + i) % 10);
      EXPECT_TRUE(torch::equal(held[b].input[i], torch::full({3, 224, 224}, expected)))
          << "batch " << b << " row " << i;
    }
  }
  EXPECT_EQ(buffers.size(), held.size());
}

TEST(DataLoaderErrors, WorkerExceptionReachesTheConsumer) {
  for (int64_t workers : {0, 1, 4}) {
    auto ds = std::make_shared<IndexDataset>(64, 10, /*throw_at=*/37);
    DataLoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.shuffle = false;
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    int good = 0;
    try {
      while (dl.next()) ++good;
      ADD_FAILURE() << "no error with " << workers << " workers";
    } catch (const qsdk::Error& e) {
      EXPECT_EQ(e.category(), qsdk::ErrorCategory::data);
      EXPECT_EQ(e.place(), "/data/bad-37");
      EXPECT_NE(e.message().find("sample 37"), std::string::npos) << e.what();
    }
    EXPECT_EQ(good, 9) << workers;  // batches 0..8 precede the failing batch 9
    EXPECT_FALSE(dl.next().has_value());
    // A new epoch works again (and fails at the same place).
    dl.start_epoch(1);
    EXPECT_TRUE(dl.next().has_value());
  }
}

TEST(DataLoaderShutdown, StoppingEarlyJoinsWorkers) {
  auto ds = std::make_shared<IndexDataset>(10000, 10, -1, /*jitter=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  {
    DataLoaderOptions o;
    o.batch_size = 16;
    o.workers = 4;
    o.prefetch = 3;
    DataLoader dl(ds, o);
    dl.start_epoch(0);
    ASSERT_TRUE(dl.next().has_value());
    dl.start_epoch(1);  // abandon epoch 0 mid-way
    ASSERT_TRUE(dl.next().has_value());
  }  // destructor joins
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 5.0);
  // Prefetch bounds the work done ahead: far less than the 10000 samples.
  EXPECT_LT(ds->calls.load(), 16 * (2 + 2 * (3 + 4)));
}

TEST(DataLoaderPlugins, SyntheticThroughTheLoader) {
  auto ds =
      qdata_test::make_dataset("synthetic", "synthetic", {{"num_samples", 40}, {"height", 8}, {"width", 8}}, true, 9);
  DataLoaderOptions o;
  o.batch_size = 16;
  o.workers = 2;
  o.drop_last = false;
  DataLoader dl(ds, o);
  const auto batches = drain(dl, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].input.sizes(), (std::vector<int64_t>{16, 3, 8, 8}));
  EXPECT_EQ(batches[2].input.size(0), 8);
}

TEST(DataLoaderOptionsCheck, BadOptionsAreConfigErrors) {
  auto ds = std::make_shared<IndexDataset>(10);
  DataLoaderOptions o;
  o.batch_size = 0;
  EXPECT_THROW(DataLoader(ds, o), qsdk::Error);
  o.batch_size = 2;
  o.rank = 2;
  o.world_size = 2;
  EXPECT_THROW(DataLoader(ds, o), qsdk::Error);
}
