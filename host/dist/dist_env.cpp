#include "dist/dist_env.hpp"

#include <qsdk/error.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace qhost {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// An integer variable; `prefix_ok` accepts SLURM's "2(x3)" forms by reading the leading number.
int64_t env_int(const char* name, int64_t fallback, bool prefix_ok = false) {
  const char* v = env(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (errno != 0 || end == v || (!prefix_ok && *end != '\0'))
    throw qsdk::Error(qsdk::ErrorCategory::usage, std::string("environment ") + name,
                      std::string("'") + v + "' is not an integer", "unset it or set a whole number");
  return n;
}

const char* require(const char* name, const DistEnv& e, const char* hint) {
  const char* v = env(name);
  if (!v)
    throw qsdk::Error(qsdk::ErrorCategory::usage, std::string("environment ") + name,
                      "is not set, but this is rank " + std::to_string(e.rank) + " of a " +
                          std::to_string(e.world_size) + "-rank job (" + e.source + ")",
                      hint);
  return v;
}

}  // namespace

std::string DistEnv::str() const {
  return "rank " + std::to_string(rank) + "/" + std::to_string(world_size) + " (local " + std::to_string(local_rank) +
         "/" + std::to_string(local_world_size) + ")";
}

DistEnv DistEnv::from_environment() {
  DistEnv e;
  if (env("WORLD_SIZE")) {
    e.source = "torchrun";
    e.world_size = env_int("WORLD_SIZE", 1);
    e.rank = env_int("RANK", e.world_size > 1 ? -1 : 0);
    e.local_rank = env_int("LOCAL_RANK", e.rank);
    e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
    if (e.rank < 0 && e.world_size > 1)
      throw qsdk::Error(qsdk::ErrorCategory::usage, "environment RANK",
                        "is not set, but WORLD_SIZE = " + std::to_string(e.world_size),
                        "launch with torchrun or set RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process");
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS") && env_int("SLURM_NTASKS", 1) > 1) {
    e.source = "slurm";
    e.rank = env_int("SLURM_PROCID", 0);
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.local_rank = env_int("SLURM_LOCALID", 0);
    e.local_world_size = env_int("SLURM_TASKS_PER_NODE", 1, /*prefix_ok=*/true);
  } else {
    return e;
  }
  if (e.world_size < 1)
    throw qsdk::Error(qsdk::ErrorCategory::usage, "environment WORLD_SIZE",
                      std::to_string(e.world_size) + " is not a process count", "set 1 or more");
  if (e.rank < 0 || e.rank >= e.world_size)
    throw qsdk::Error(qsdk::ErrorCategory::usage, "environment RANK",
                      std::to_string(e.rank) + " is outside 0.." + std::to_string(e.world_size - 1),
                      "every process needs a distinct RANK below WORLD_SIZE");
  if (e.local_world_size < 1) e.local_world_size = 1;
  if (e.local_rank < 0 || e.local_rank >= e.local_world_size) e.local_rank = e.local_rank < 0 ? 0 : e.local_rank;
  if (e.distributed()) {
    if (const char* f = env("QTOOL_RENDEZVOUS_FILE")) e.store_file = f;
    for (const char* var : {"QTOOL_JOB_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"})
      if (const char* id = env(var)) {
        e.job_id = id;
        break;
      }
    if (const char* token = env("QTOOL_JOB_TOKEN")) e.job_token = token;
    e.master_addr = require("MASTER_ADDR", e,
                            e.source == "slurm"
                                ? "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)"
                                : "set MASTER_ADDR to the host of rank 0 (torchrun does)");
    const int64_t port = env_int("MASTER_PORT", 29500);
    if (port < 1 || port > 65535)
      throw qsdk::Error(qsdk::ErrorCategory::usage, "environment MASTER_PORT",
                        std::to_string(port) + " is not a TCP port", "use a free port in 1024..65535");
    e.master_port = static_cast<int>(port);
  }
  return e;
}

}  // namespace qhost
