// c10d wiring. LibTorch 1.x derives ProcessGroupGloo/NCCL from ProcessGroup,
// 2.x from Backend; both offer the same allreduce/broadcast/barrier calls.
#if __has_include(<gloo/algorithm.h>)
#define USE_C10D_GLOO 1
#define QTOOL_HAVE_GLOO 1
#endif
#if defined(QTOOL_WITH_CUDA) && QTOOL_WITH_CUDA
#define USE_C10D_NCCL 1
#endif

#include "dist/communicator.hpp"

#include "platform/logging.hpp"
#include "platform/test_seams.hpp"

#include <qsdk/error.hpp>

#include <c10/util/hash.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
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
#include <random>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace qhost {
namespace {

#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;
#else
using PgBase = c10d::ProcessGroup;
#endif

using Clock = std::chrono::steady_clock;

// Relative to the job's PrefixStore ("qtool/<job id>/").
std::string hb_key(int64_t rank) { return "heartbeat/" + std::to_string(rank); }
std::string step_key(int64_t rank) { return "step/" + std::to_string(rank); }

std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// What rank `rank` shows to prove it holds the job token, bound to this rendezvous' nonce.
std::string join_proof(const DistEnv& env, int64_t rank, const std::string& nonce) {
  if (env.job_token.empty()) return "-";
  c10::sha1 h(env.job_token + "|" + env.job_id + "|" + std::to_string(rank) + "|" + nonce);
  return h.str();
}

std::string random_hex(size_t n) {
  std::random_device rd;
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += digits[rd() % 16];
  return s;
}

// The join check (keys under "qtool/join/", outside any job prefix, so that a rank
// of another job is named instead of waiting on keys nobody writes): every rank
// posts its job id and a proof of the job token bound to rank 0's nonce; rank 0
// checks them all and posts a verdict; the others check rank 0's proof too.
void check_join(c10d::Store& store, const DistEnv& env) {
  const std::string base = "qtool/join/";
  if (env.rank == 0) store.set(base + "nonce", bytes(random_hex(32)));
  store.wait({base + "nonce"});
  const std::string nonce = text(store.get(base + "nonce"));
  store.set(base + std::to_string(env.rank), bytes(env.job_id + "\n" + join_proof(env, env.rank, nonce)));
  auto posted = [&](int64_t r) {
    const std::string v = text(store.get(base + std::to_string(r)));
    const auto nl = v.find('\n');
    return std::make_pair(v.substr(0, nl), nl == std::string::npos ? std::string() : v.substr(nl + 1));
  };
  auto problem = [&](int64_t r) -> std::string {
    const auto [job, proof] = posted(r);
    if (job != env.job_id)
      return "rank " + std::to_string(r) + " belongs to job '" + job + "', rank " + std::to_string(env.rank) +
             " to job '" + env.job_id + "'";
    if (proof != join_proof(env, r, nonce))
      return "rank " + std::to_string(r) + " did not present this job's token (QTOOL_JOB_TOKEN differs or is unset)";
    return "";
  };
  std::string verdict;
  if (env.rank == 0) {
    std::vector<std::string> keys;
    for (int64_t r = 1; r < env.world_size; ++r) keys.push_back(base + std::to_string(r));
    store.wait(keys);
    for (int64_t r = 1; r < env.world_size && verdict.empty(); ++r) verdict = problem(r);
    store.set(base + "verdict", bytes(verdict.empty() ? "ok" : verdict));
  } else {
    store.wait({base + "verdict"});
    verdict = text(store.get(base + "verdict"));
    if (verdict == "ok") verdict = problem(0);
  }
  if (!verdict.empty() && verdict != "ok")
    throw qsdk::Error(qsdk::ErrorCategory::usage, "rendezvous (job '" + env.job_id + "')",
                      env.str() + ": refused: " + verdict,
                      "start every rank of a job with the same QTOOL_JOB_ID and QTOOL_JOB_TOKEN (and its own "
                      "MASTER_PORT per job)");
}

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
    if (!env.store_file.empty()) {
      // `--nproc`: a FileStore in the launcher's private 0700 folder; no port is opened.
      // Two handles per rank (main thread + watchdog): the file goes when all are closed.
      const int handles = static_cast<int>(2 * env.world_size);
      auto mine = c10::make_intrusive<c10d::FileStore>(env.store_file, handles);
      auto hb = c10::make_intrusive<c10d::FileStore>(env.store_file, handles);
      mine->setTimeout(timeout);
      hb->setTimeout(timeout);
      state_->store = mine;
      state_->hb_store = hb;
    } else {
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
    }
    check_join(*state_->store, env);
  } catch (const qsdk::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "rendezvous " + where,
                      env_.str() + ": cannot reach the store: " + std::string(e.what()).substr(0, 400),
                      env.rank == 0 ? "is MASTER_PORT already in use? pick another port"
                                    : "is rank 0 running, and are MASTER_ADDR/MASTER_PORT the same on every rank?");
  }
  if (env.store_file.empty() && env.job_token.empty() && env.rank == 0)
    spdlog::warn("the rendezvous store on port {} accepts any client that can reach it: export the same secret "
                 "QTOOL_JOB_TOKEN to every rank to have joins checked",
                 env.master_port);
  // Every key of this job under "qtool/<job id>/".
  const std::string prefix = "qtool/" + env.job_id;
  state_->store = c10::make_intrusive<c10d::PrefixStore>(prefix, state_->store);
  state_->hb_store = c10::make_intrusive<c10d::PrefixStore>(prefix, state_->hb_store);
  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", state_->store);
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
  try {
    if (test_seams::integer("KILL_RANK", -1) == env.rank && test_seams::value("KILL_AT_RENDEZVOUS")) {
      spdlog::warn("killing this process before the first barrier (QTOOL_TEST_KILL_AT_RENDEZVOUS)");
      flush_logs();
      ::kill(::getpid(), SIGKILL);
    }
    barrier();
  } catch (...) {
    // The destructor does not run for a throwing constructor: a still joinable
    // watchdog thread would end the process in std::terminate (SIGABRT).
    stopping_.store(true);
    state_->cv.notify_all();
    if (state_->watchdog.joinable()) state_->watchdog.join();
    throw;
  }
  spdlog::info("distributed: {} via {} ({} at {}, job '{}', timeout {} s)", env_.str(), options.backend, env_.source,
               env.store_file.empty() ? where : "a private file store", env_.job_id, options.timeout_s);
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
