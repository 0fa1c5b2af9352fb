// dist_env.hpp - where this process sits in a data-parallel job, read from
// torchrun's environment (or SLURM's, mapped to it).
#pragma once

#include <cstdint>
#include <string>

namespace qhost {

/// Rank layout and rendezvous address of a (possibly single-process) run.
///
/// torchrun convention: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
/// MASTER_ADDR, MASTER_PORT. Under `srun` (SLURM_PROCID / SLURM_NTASKS set and
/// WORLD_SIZE not) the SLURM variables are mapped: RANK = SLURM_PROCID,
/// WORLD_SIZE = SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, LOCAL_WORLD_SIZE =
/// the first count of SLURM_TASKS_PER_NODE; MASTER_ADDR must still be exported.
struct DistEnv {
  int64_t rank = 0;              ///< global rank
  int64_t world_size = 1;        ///< number of ranks
  int64_t local_rank = 0;        ///< rank on this node (selects the GPU)
  int64_t local_world_size = 1;  ///< ranks on this node (divides the CPU threads)
  std::string master_addr = "127.0.0.1";  ///< rendezvous host (rank 0 serves the store there)
  int master_port = 29500;                ///< rendezvous port
  std::string source = "single";          ///< "single", "torchrun" or "slurm"
  /// Rendezvous through a c10d FileStore at this path instead of a TCPStore
  /// (QTOOL_RENDEZVOUS_FILE; `--nproc` puts it in a private 0700 folder, so no
  /// port is opened and no other user can join).
  std::string store_file;
  /// Prefix of every rendezvous-store key: QTOOL_JOB_ID, else TORCHELASTIC_RUN_ID,
  /// else SLURM_JOB_ID, else "default".
  std::string job_id = "default";
  /// Shared secret every rank must prove on joining (QTOOL_JOB_TOKEN; "" = no check).
  std::string job_token;

  /// True for more than one rank.
  bool distributed() const { return world_size > 1; }
  /// "rank 1/4 (local 1/2)".
  std::string str() const;

  /// Reads the environment (also QTOOL_RENDEZVOUS_FILE, QTOOL_JOB_ID and
  /// QTOOL_JOB_TOKEN, see above); throws qsdk::Error(usage) naming a variable that is
  /// missing, not a number or out of range.
  static DistEnv from_environment();
};

}  // namespace qhost
