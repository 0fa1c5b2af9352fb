// CPU thread settings: at::parallel_for really runs in parallel in code built
// against qtool::sdk (it needs -fopenmp), and set_flush_denormal reaches every
// intra-op thread.
#include "platform/cpu_math.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {

/// A product in the denormal range: 1e-40 with IEEE arithmetic, 0 when flushed.
float denormal_product() {
  volatile float a = 1e-30f, b = 1e-10f;
  return a * b;
}

struct ThreadResults {
  std::set<std::thread::id> threads;
  std::vector<float> products;
};

ThreadResults on_every_thread() {
  ThreadResults r;
  std::mutex m;
  const int64_t n = at::get_num_threads();
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    const float p = denormal_product();
    std::lock_guard<std::mutex> lock(m);
    r.threads.insert(std::this_thread::get_id());
    for (int64_t i = b; i < e; ++i) r.products.push_back(p);
  });
  return r;
}

TEST(CpuMath, ParallelForUsesTheIntraOpThreads) {
  at::set_num_threads(2);
  const auto r = on_every_thread();
  // One thread here means the build lost OpenMP and every kernel runs serially.
  EXPECT_EQ(r.threads.size(), 2u);
}

TEST(CpuMath, FlushDenormalReachesEveryThread) {
  at::set_num_threads(2);
  qhost::set_flush_denormal(true);
  EXPECT_EQ(denormal_product(), 0.f);
  auto r = on_every_thread();
  ASSERT_EQ(r.products.size(), 2u);
  for (float p : r.products) EXPECT_EQ(p, 0.f);

  qhost::set_flush_denormal(false);
  EXPECT_GT(denormal_product(), 0.f);
  r = on_every_thread();
  for (float p : r.products) EXPECT_GT(p, 0.f);
}

}  // namespace
