#include "dist/grad_reducer.hpp"

#include "dist/communicator.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace qhost {

// Lives as long as the longest holder: the reducer or a hook on a parameter
// (hooks cannot be removed from a leaf, so they hold the state weakly).
struct GradReducer::Shared {
  struct Bucket {
    std::vector<size_t> params;  // indices into `params`
    at::Tensor flat;             // contiguous buffer of the bucket's gradients
    size_t ready = 0;            // gradients copied in this step
    PendingReduce pending;
    bool launched = false;
  };
  Communicator* comm = nullptr;
  std::vector<at::Tensor> params;
  std::vector<size_t> bucket_of;  // param index -> bucket
  std::vector<int64_t> offset_of; // param index -> offset in the bucket's flat buffer
  std::vector<char> got;          // param got a gradient this step
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  bool active = false;
  double wait_seconds = 0.0;
  std::mutex mutex;

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].ready == buckets[next_launch].params.size()) {
      auto& b = buckets[next_launch];
      b.pending = comm->all_reduce_sum_async(b.flat);
      b.launched = true;
      ++next_launch;
    }
  }

  void on_grad(size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!active || got[i]) return;
    auto& b = buckets[bucket_of[i]];
    b.flat.narrow(0, offset_of[i], grad.numel()).copy_(grad.reshape({-1}));
    got[i] = 1;
    ++b.ready;
    launch_ready();
  }
};

GradReducer::GradReducer(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes,
                         int64_t first_bucket_bytes)
    : shared_(std::make_shared<Shared>()) {
  auto& s = *shared_;
  s.comm = &comm;
  for (auto& p : params)
    if (p.requires_grad()) s.params.push_back(p);
  const size_t n = s.params.size();
  s.bucket_of.assign(n, 0);
  s.offset_of.assign(n, 0);
  s.got.assign(n, 0);
  // Reverse registration order, split by size and dtype.
  int64_t cap = first_bucket_bytes;
  for (size_t k = n; k-- > 0;) {
    const auto& p = s.params[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    bool fresh = s.buckets.empty();
    if (!fresh) {
      auto& last = s.buckets.back();
      const auto& first = s.params[last.params.front()];
      int64_t used = 0;
      for (auto j : last.params) used += s.params[j].numel() * static_cast<int64_t>(s.params[j].element_size());
      fresh = used + bytes > cap || first.scalar_type() != p.scalar_type() || first.device() != p.device();
      if (fresh) cap = bucket_bytes;
    }
    if (fresh) s.buckets.emplace_back();
    s.buckets.back().params.push_back(k);
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    int64_t offset = 0;
    for (auto k : s.buckets[b].params) {
      s.bucket_of[k] = b;
      s.offset_of[k] = offset;
      offset += s.params[k].numel();
    }
    const auto& first = s.params[s.buckets[b].params.front()];
    s.buckets[b].flat = torch::zeros({offset}, first.options().requires_grad(false));
  }
  std::weak_ptr<Shared> weak = shared_;
  for (size_t k = 0; k < n; ++k)
    s.params[k].register_hook([weak, k](const at::Tensor& grad) {
      if (auto state = weak.lock()) state->on_grad(k, grad);
    });
}

GradReducer::~GradReducer() = default;

void GradReducer::prepare() {
  auto& s = *shared_;
  std::lock_guard<std::mutex> lock(s.mutex);
  for (auto& b : s.buckets) {
    b.ready = 0;
    b.launched = false;
  }
  std::fill(s.got.begin(), s.got.end(), 0);
  s.next_launch = 0;
  s.active = true;
}

void GradReducer::finish() {
  auto& s = *shared_;
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.active = false;
    // Parameters without a gradient this step contribute zeros.
    for (size_t k = 0; k < s.params.size(); ++k)
      if (!s.got[k]) {
        auto& b = s.buckets[s.bucket_of[k]];
        b.flat.narrow(0, s.offset_of[k], s.params[k].numel()).zero_();
        ++b.ready;
      }
    s.launch_ready();
  }
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / static_cast<double>(s.comm->world_size());
  for (auto& b : s.buckets) {
    b.pending.wait();
    b.flat.mul_(inv);
    for (auto k : b.params) {
      auto& p = s.params[k];
      auto avg = b.flat.narrow(0, s.offset_of[k], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(avg);
      else if (s.got[k])
        p.mutable_grad() = avg.clone();
    }
  }
  s.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t GradReducer::buckets() const { return shared_->buckets.size(); }

int64_t GradReducer::bytes() const {
  int64_t total = 0;
  for (const auto& b : shared_->buckets) total += b.flat.numel() * static_cast<int64_t>(b.flat.element_size());
  return total;
}

double GradReducer::last_wait_seconds() const { return shared_->wait_seconds; }

std::string GradReducer::describe() const {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "%zu buckets, %.2f MB of gradients per step", buckets(),
                static_cast<double>(bytes()) / 1e6);
  return buf;
}

}  // namespace qhost
