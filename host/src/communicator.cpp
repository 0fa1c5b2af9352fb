// c10d wiring. LibTorch 1.x derives ProcessGroupGloo/NCCL from ProcessGroup,
// 2.x from Backend; both offer the same allreduce/broadcast/barrier calls.
#if __has_include(<gloo/algorithm.h>)
#define USE_C10D_GLOO 1
#define QTOOL_HAVE_GLOO 1
#endif
#if defined(QTOOL_WITH_CUDA) && QTOOL_WITH_CUDA
#define USE_C10D_NCCL 1
#endif

#include "communicator.hpp"

#include "logging.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#if defined(QTOOL_HAVE_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace qhost {
namespace {

#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;
#else
using PgBase = c10d::ProcessGroup;
#endif

using Clock = std::chrono::steady_clock;

std::string hb_key(int64_t rank) { return "qtool/heartbeat/" + std::to_string(rank); }
std::string step_key(int64_t rank) { return "qtool/step/" + std::to_string(rank); }

std::string join_ranks(const std::vector<int64_t>& ranks) {
  std::string s;
  for (auto r : ranks) s += (s.empty() ? "" : ", ") + std::to_string(r);
  return s;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

struct Communicator::State {
  c10::intrusive_ptr<c10d::Store> store;       // the main thread's connection
  c10::intrusive_ptr<c10d::Store> hb_store;    // the watchdog's own connection
  c10::intrusive_ptr<PgBase> pg;
  std::thread watchdog;
  std::mutex mutex;
  std::condition_variable cv;
};

void PendingReduce::wait() {
  if (!wait_) return;
  auto w = std::move(wait_);
  wait_ = nullptr;
  w();
}

Communicator::Communicator(const DistEnv& env, const CommunicatorOptions& options)
    : env_(env), options_(options), state_(std::make_unique<State>()) {
  const auto timeout = std::chrono::milliseconds(options.timeout_s * 1000);
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    state_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    c10d::TCPStoreOptions co = so;
    co.isServer = false;
    co.numWorkers = c10::nullopt;
    co.waitWorkers = false;
    state_->hb_store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, co);
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "rendezvous " + where,
                      env_.str() + ": cannot reach the store: " + std::string(e.what()).substr(0, 400),
                      env.rank == 0 ? "is MASTER_PORT already in use? pick another port"
                                    : "is rank 0 running, and are MASTER_ADDR/MASTER_PORT the same on every rank?");
  }
  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("qtool/pg", state_->store);
  try {
    if (options.backend == "nccl") {
#if defined(USE_C10D_NCCL)
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      state_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, env.rank, env.world_size, o);
#else
      throw qsdk::Error(qsdk::ErrorCategory::config, "distributed.backend",
                        "\"nccl\" needs a qhost built against a CUDA LibTorch", "use backend = \"gloo\"");
#endif
    } else {
#if defined(QTOOL_HAVE_GLOO)
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(env.master_addr))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      state_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, env.rank, env.world_size, o);
#else
      throw qsdk::Error(qsdk::ErrorCategory::config, "distributed.backend",
                        "this qhost was built without Gloo headers", "install libgloo-dev and rebuild, or use nccl");
#endif
    }
  } catch (const qsdk::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "process group (" + options.backend + ")",
                      env_.str() + ": " + std::string(e.what()).substr(0, 400),
                      "check that every rank uses the same WORLD_SIZE and MASTER_ADDR:MASTER_PORT");
  }
  state_->hb_store->add(hb_key(env.rank), 1);
  state_->watchdog = std::thread([this] { watchdog_loop(); });
  barrier();
  spdlog::info("distributed: {} via {} ({} at {}, timeout {} s)", env_.str(), options.backend, env_.source, where,
               options.timeout_s);
}

Communicator::~Communicator() {
  stopping_.store(true);
  state_->cv.notify_all();
  if (state_->watchdog.joinable()) state_->watchdog.join();
}

void Communicator::shutdown() {
  if (stopping_.exchange(true)) return;
  state_->cv.notify_all();
  if (state_->watchdog.joinable()) state_->watchdog.join();
  barrier();
}

void Communicator::watchdog_loop() {
  const auto timeout = std::chrono::seconds(options_.timeout_s);
  std::vector<int64_t> last(static_cast<size_t>(env_.world_size), -1);
  std::vector<Clock::time_point> moved(static_cast<size_t>(env_.world_size), Clock::now());
  std::unique_lock<std::mutex> lock(state_->mutex);
  while (!stopping_.load()) {
    lock.unlock();
    try {
      state_->hb_store->add(hb_key(env_.rank), 1);
      const std::string step = std::to_string(progress_.load());
      state_->hb_store->set(step_key(env_.rank), std::vector<uint8_t>(step.begin(), step.end()));
      const auto now = Clock::now();
      for (int64_t r = 0; r < env_.world_size; ++r) {
        if (r == env_.rank) continue;
        const int64_t v = state_->hb_store->add(hb_key(r), 0);
        if (v != last[r]) {
          last[r] = v;
          moved[r] = now;
        } else if (now - moved[r] > timeout && !stopping_.load()) {
          spdlog::error("rank {} has sent no heartbeat for {} s (killed, stopped or unreachable): {} stops too "
                        "(timeout: [distributed] timeout_s)",
                        r, options_.timeout_s, env_.str());
          flush_logs();
          std::_Exit(6);
        }
      }
    } catch (const std::exception& e) {
      if (!stopping_.load()) {
        spdlog::error("the rendezvous store at {}:{} (served by rank 0) is gone: {} stops ({})", env_.master_addr,
                      env_.master_port, env_.str(), std::string(e.what()).substr(0, 200));
        flush_logs();
        std::_Exit(6);
      }
    }
    lock.lock();
    state_->cv.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_.load(); });
  }
}

std::vector<int64_t> Communicator::silent_ranks(double seconds) {
  std::vector<int64_t> silent;
  try {
    auto client = state_->hb_store;
    std::map<int64_t, int64_t> before;
    for (int64_t r = 0; r < env_.world_size; ++r)
      if (r != env_.rank) before[r] = client->add(hb_key(r), 0);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    for (auto [r, v] : before)
      if (client->add(hb_key(r), 0) == v) silent.push_back(r);
  } catch (const std::exception&) {
    silent.push_back(0);  // the store itself is gone: rank 0 serves it
  }
  return silent;
}

void Communicator::rethrow(const std::string& what, const std::exception& e) {
  const auto silent = silent_ranks(2.5);
  std::string who = silent.empty() ? "no rank has stopped its heartbeat (one may be stuck or far behind)"
                                   : (silent.size() == 1 ? "rank " : "ranks ") + join_ranks(silent) +
                                         " stopped responding (killed, stopped or unreachable)";
  throw qsdk::Error(qsdk::ErrorCategory::runtime, env_.str() + " " + what,
                    who + ": " + std::string(e.what()).substr(0, 300),
                    "see that rank's output; the last checkpoint is intact: rerun with --resume");
}

void Communicator::all_reduce_sum_(at::Tensor& t) {
  if (env_.world_size <= 1) return;
  std::vector<at::Tensor> v{t};
  try {
    state_->pg->allreduce(v)->wait();
  } catch (const std::exception& e) {
    rethrow("all-reduce", e);
  }
}

void Communicator::all_reduce_max_(at::Tensor& t) {
  if (env_.world_size <= 1) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  try {
    state_->pg->allreduce(v, o)->wait();
  } catch (const std::exception& e) {
    rethrow("all-reduce (max)", e);
  }
}

PendingReduce Communicator::all_reduce_sum_async(at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = state_->pg->allreduce(v);
  } catch (const std::exception& e) {
    rethrow("all-reduce", e);
  }
  return PendingReduce([this, work] {
    try {
      work->wait();
    } catch (const std::exception& e) {
      rethrow("gradient all-reduce", e);
    }
  });
}

void Communicator::broadcast_(const std::vector<at::Tensor>& tensors, int64_t root) {
  if (env_.world_size <= 1 || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  // One message per dtype: flatten, broadcast, copy back.
  std::map<int, std::vector<at::Tensor>> by_type;
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) by_type[static_cast<int>(t.scalar_type())].push_back(t);
  for (auto& [type, list] : by_type) {
    std::vector<at::Tensor> flat;
    for (const auto& t : list) flat.push_back(t.detach().reshape({-1}));
    std::vector<at::Tensor> msg{torch::cat(flat)};
    try {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      state_->pg->broadcast(msg, o)->wait();
    } catch (const std::exception& e) {
      rethrow("broadcast", e);
    }
    int64_t offset = 0;
    for (auto& t : list) {
      const int64_t n = t.numel();
      t.detach().copy_(msg[0].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

void Communicator::barrier() {
  if (env_.world_size <= 1) return;
  try {
    state_->pg->barrier()->wait();
  } catch (const std::exception& e) {
    rethrow("barrier", e);
  }
}

}  // namespace qhost
