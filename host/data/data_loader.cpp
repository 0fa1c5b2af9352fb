// data_loader.cpp - see data_loader.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "data/data_loader.hpp"

#include "platform/test_seams.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <random>
#include <string>

namespace qhost {
namespace {

// splitmix64 finalizer: turns structured inputs (seed, epoch, index) into
// well-spread generator seeds.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Unbiased integer in [0, n).
uint64_t below(std::mt19937_64& g, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r = g();
  while (r >= limit) r = g();
  return r % n;
}

[[noreturn]] void bad_option(const std::string& key, const std::string& message) {
  throw qsdk::Error(qsdk::ErrorCategory::config, "data." + key, message);
}

}  // namespace

// Why a pool: a batch is allocated by a worker and freed by the consumer, and
// with several batches in flight glibc's heuristics (heap trimming, the
// dynamic mmap threshold) hand most of that memory back to the kernel between
// batches. Every batch then page-faults its pages in again, each zeroed by the
// kernel: on the ImageNet benchmark ~90 faults per image, a quarter of a
// worker's CPU time, none of which the calling thread (workers = 0, which
// frees each batch before allocating the next) pays. Reusing the buffers
// removes the faults whatever the allocator does.
struct DataLoader::BufferPool {
  size_t bytes = 0;     // one batch's input (full batch_size)
  size_t max_free = 0;  // buffers kept for reuse; more are freed
  std::mutex mutex;
  std::vector<void*> free;

  BufferPool(size_t b, size_t keep) : bytes(b), max_free(keep) {}
  ~BufferPool() {
    for (void* p : free) std::free(p);
  }
  void* take() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!free.empty()) {
        void* p = free.back();
        free.pop_back();
        return p;
      }
    }
    // 64-byte aligned as c10's CPU allocator; size rounded up as aligned_alloc requires.
    void* p = std::aligned_alloc(64, std::max<size_t>((bytes + 63) / 64 * 64, 64));
    if (!p) throw std::bad_alloc();
    return p;
  }
  void give(void* p) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (free.size() < max_free) {
        free.push_back(p);
        return;
      }
    }
    std::free(p);
  }
};

uint64_t DataLoader::sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

std::vector<int64_t> DataLoader::shard_indices(int64_t size, const DataLoaderOptions& o, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  if (o.shuffle && size > 1) {
    // Same generator on every rank: the shards below partition one permutation.
    std::mt19937_64 g(mix(mix(o.seed ^ 0x73687566666c65ull) ^ static_cast<uint64_t>(epoch)));
    for (int64_t i = size - 1; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)], order[below(g, static_cast<uint64_t>(i + 1))]);
  }
  const int64_t w = o.world_size;
  if (w > 1 && size > 0 && o.even_shards) {
    if (o.drop_last) {
      order.resize(static_cast<size_t>(size / w * w));
    } else {
      const int64_t total = (size + w - 1) / w * w;
      for (int64_t i = size; i < total; ++i) order.push_back(order[static_cast<size_t>((i - size) % size)]);
    }
  }
  std::vector<int64_t> mine;
  mine.reserve(order.size() / static_cast<size_t>(w) + 1);
  for (size_t i = static_cast<size_t>(o.rank); i < order.size(); i += static_cast<size_t>(w)) mine.push_back(order[i]);
  return mine;
}

DataLoader::DataLoader(std::shared_ptr<qsdk::Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (!dataset_) throw qsdk::Error(qsdk::ErrorCategory::runtime, "data", "no dataset given to the loader");
  if (options_.batch_size < 1) bad_option("batch_size", "must be at least 1");
  if (options_.workers < 0) bad_option("workers", "must be at least 0");
  if (options_.prefetch < 1) bad_option("prefetch", "must be at least 1");
  if (options_.world_size < 1) bad_option("world_size", "must be at least 1");
  if (options_.rank < 0 || options_.rank >= options_.world_size)
    bad_option("rank", "rank " + std::to_string(options_.rank) + " is outside [0, " +
                           std::to_string(options_.world_size) + ")");
  stall_batch_ = test_seams::integer("DATA_STALL_AT_BATCH", -1);
  sample_shape_ = dataset_->sample_shape();
  num_classes_ = dataset_->num_classes();
  if (dataset_->size() <= 0)
    throw qsdk::Error(qsdk::ErrorCategory::data, dataset_->describe(), "dataset is empty",
                      "check the dataset's root and split");
  sample_numel_ =
      std::accumulate(sample_shape_.begin(), sample_shape_.end(), int64_t{1}, std::multiplies<int64_t>());
  // At most prefetch + workers batches are in flight; the consumer holds one or
  // two more (the current batch, the one it is about to drop).
  pool_ = std::make_shared<BufferPool>(static_cast<size_t>(options_.batch_size * sample_numel_) * sizeof(float),
                                       static_cast<size_t>(options_.prefetch + options_.workers + 2));
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::samples_per_rank() const {
  const int64_t n = dataset_->size(), w = options_.world_size;
  if (!options_.even_shards) return n / w + (options_.rank < n % w ? 1 : 0);
  return options_.drop_last ? n / w : (n + w - 1) / w;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t s = samples_per_rank(), b = options_.batch_size;
  return options_.drop_last ? s / b : (s + b - 1) / b;
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void DataLoader::start_epoch(int64_t epoch) {
  stop_workers();
  epoch_ = epoch;
  indices_ = shard_indices(dataset_->size(), options_, epoch);
  num_batches_ = batches_per_epoch();
  next_issue_ = 0;
  next_consume_ = 0;
  stop_ = false;
  failed_ = false;
  ready_.clear();
  try {
    for (int64_t i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    stop_workers();
    throw;
  }
}

void DataLoader::worker_loop() {
  // One intra-op thread per worker, as PyTorch's DataLoader workers do
  // (torch.set_num_threads(1)): a worker prepares one sample at a time and the
  // workers are the parallelism. Under OpenMP each std::thread starts with the
  // default team size (every core), so each at::parallel_for inside a transform
  // would start a team that oversubscribes the cores and spin-waits between
  // regions: workers cost 2.4x the CPU time per image of the calling thread.
  // The setting is this thread's own OpenMP state; the training thread keeps
  // its [experiment] threads.
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  while (true) {
    int64_t b = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [this] {
        return stop_ || next_issue_ >= num_batches_ || next_issue_ < next_consume_ + options_.prefetch;
      });
      if (stop_ || next_issue_ >= num_batches_) return;
      b = next_issue_++;
    }
    Slot slot;
    if (stall_batch_ == b) {  // test hook: a dataset that never delivers this batch (touches nothing after)
      std::this_thread::sleep_for(std::chrono::hours(1));
      return;
    }
    try {
      slot.batch = load_batch(b);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[b] = std::move(slot);
    }
    ready_cv_.notify_all();
  }
}

std::optional<qsdk::Batch> DataLoader::next() {
  if (epoch_ < 0) start_epoch(0);
  if (failed_ || next_consume_ >= num_batches_) return std::nullopt;
  if (options_.workers == 0) {
    const int64_t b = next_consume_++;
    try {
      return load_batch(b);
    } catch (...) {
      failed_ = true;
      throw;
    }
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    auto arrived = [this] { return ready_.count(next_consume_) > 0; };
    if (options_.wait_timeout_s <= 0)
      ready_cv_.wait(lock, arrived);
    else if (!ready_cv_.wait_for(lock, std::chrono::seconds(options_.wait_timeout_s), arrived)) {
      const int64_t late = next_consume_;
      // A worker stuck in the dataset cannot be joined: leave it behind.
      stop_ = true;
      failed_ = true;
      lock.unlock();
      work_cv_.notify_all();
      for (auto& t : threads_) t.detach();
      threads_.clear();
      throw qsdk::Error(qsdk::ErrorCategory::data,
                        "[data] wait_timeout_s",
                        "batch " + std::to_string(late) + " of epoch " + std::to_string(epoch_) + " did not arrive within " +
                            std::to_string(options_.wait_timeout_s) + " s (the dataset or its storage hangs)",
                        "check the data storage, or raise [data] wait_timeout_s (0 = no limit)");
    }
    auto it = ready_.find(next_consume_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
  }
  work_cv_.notify_all();
  if (slot.error) {
    failed_ = true;
    stop_workers();
    std::rethrow_exception(slot.error);
  }
  return std::move(slot.batch);
}

qsdk::Batch DataLoader::load_batch(int64_t batch) const {
  const int64_t begin = batch * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(indices_.size()));
  std::vector<int64_t> shape{end - begin};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  qsdk::Batch out;
  void* buffer = pool_->take();
  try {
    out.input = torch::from_blob(
        buffer, shape, [pool = pool_](void* p) { pool->give(p); }, torch::kFloat32);
  } catch (...) {
    pool_->give(buffer);
    throw;
  }
  out.target = torch::empty({end - begin}, torch::kInt64);
  const int64_t numel = sample_numel_;
  float* dst = out.input.data_ptr<float>();
  int64_t* labels = out.target.data_ptr<int64_t>();
  for (int64_t i = begin; i < end; ++i) {
    const int64_t index = indices_[static_cast<size_t>(i)];
    std::mt19937_64 rng(sample_seed(options_.seed, epoch_, index));
    qsdk::Example ex;
    try {
      ex = dataset_->get(index, rng);
    } catch (const qsdk::Error& e) {
      throw qsdk::Error(e.category(), e.place(), e.message() + " (while loading sample " + std::to_string(index) + ")",
                        e.hint());
    } catch (const std::exception& e) {
      throw qsdk::Error(qsdk::ErrorCategory::data, dataset_->describe(),
                        "sample " + std::to_string(index) + " failed to load: " + e.what());
    }
    if (!ex.image.defined() || ex.image.sizes().vec() != sample_shape_)
      throw qsdk::Error(qsdk::ErrorCategory::data, dataset_->describe(),
                        "sample " + std::to_string(index) + " has shape " +
                            (ex.image.defined() ? c10::str(ex.image.sizes()) : std::string("(none)")) +
                            ", the dataset announced " + c10::str(c10::IntArrayRef(sample_shape_)),
                        "the dataset plugin is inconsistent; report it to its author");
    if (ex.label < 0 || ex.label >= num_classes_)
      throw qsdk::Error(qsdk::ErrorCategory::data, dataset_->describe(),
                        "sample " + std::to_string(index) + " has label " + std::to_string(ex.label) + " outside [0, " +
                            std::to_string(num_classes_) + ")");
    const torch::Tensor img = ex.image.to(torch::kFloat32).contiguous();
    std::memcpy(dst + (i - begin) * numel, img.data_ptr<float>(), static_cast<size_t>(numel) * sizeof(float));
    labels[i - begin] = ex.label;
  }
  return out;
}

}  // namespace qhost
