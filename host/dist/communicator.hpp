// communicator.hpp - the c10d process group of a data-parallel run (Gloo on CPU,
// NCCL with a CUDA LibTorch), its TCPStore rendezvous, and a heartbeat watchdog
// that turns a dead or hung rank into an error naming it.
#pragma once

#include "dist/dist_env.hpp"

#include <qsdk/distributed.hpp>

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

/// How the process group is made.
struct CommunicatorOptions {
  std::string backend = "gloo";  ///< gloo | nccl
  int64_t timeout_s = 300;       ///< rendezvous, collective and heartbeat timeout
};

/// An all-reduce in flight.
class PendingReduce {
 public:
  PendingReduce() = default;
  /// Wraps the backend's wait.
  explicit PendingReduce(std::function<void()> wait) : wait_(std::move(wait)) {}
  /// Blocks until the result is in the tensor (rethrows a failure as qsdk::Error).
  void wait();
  /// True when launched and not yet waited for.
  bool pending() const { return static_cast<bool>(wait_); }

 private:
  std::function<void()> wait_;
};

/// The ranks of one job. Also the qsdk::Collectives plugins see.
///
/// Rendezvous: rank 0 serves a TCPStore at MASTER_ADDR:MASTER_PORT and every
/// rank connects to it; the process group is built on it. Each rank then bumps
/// a heartbeat counter in the store every second from its own thread (and
/// connection); a watchdog thread reads the others'. A rank whose counter has
/// not moved for `timeout_s` (killed, stopped, or its node gone) makes every
/// other rank log an error naming it and exit with the runtime exit code, so a
/// job never hangs. A failed collective is reported the same way, naming the
/// ranks whose heartbeat stopped.
class Communicator final : public qsdk::Collectives {
 public:
  /// Rendezvous with the other ranks of `env` (blocks up to the timeout).
  Communicator(const DistEnv& env, const CommunicatorOptions& options);
  ~Communicator() override;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int64_t rank() const override { return env_.rank; }
  int64_t world_size() const override { return env_.world_size; }
  /// Sum over ranks, in place, blocking.
  void all_reduce_sum_(at::Tensor& t) override;
  /// Element-wise maximum over ranks, in place, blocking.
  void all_reduce_max_(at::Tensor& t) override;
  /// Starts a sum over ranks of `t` (kept alive by the caller until wait()).
  PendingReduce all_reduce_sum_async(at::Tensor& t);
  /// Copies rank `root`'s values into `tensors` on every rank (flattened into one message per dtype).
  void broadcast_(const std::vector<at::Tensor>& tensors, int64_t root = 0);
  /// Waits for every rank.
  void barrier();
  /// Where this rank is (reported when another rank waits on it).
  void set_progress(int64_t global_step) { progress_.store(global_step); }
  /// Ends the job cleanly: stops the watchdog, then a final barrier so rank 0
  /// (which serves the store) leaves last.
  void shutdown();
  /// The layout this communicator was made for.
  const DistEnv& env() const { return env_; }

  /// Ranks whose heartbeat did not move within `seconds` (a quick check after a failure).
  std::vector<int64_t> silent_ranks(double seconds);

 private:
  struct State;
  [[noreturn]] void rethrow(const std::string& what, const std::exception& e);
  void watchdog_loop();

  DistEnv env_;
  CommunicatorOptions options_;
  std::unique_ptr<State> state_;
  std::atomic<int64_t> progress_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace qhost
