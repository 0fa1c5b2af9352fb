// launcher.hpp - `qhost run --nproc N`: N local ranks as child processes, the
// way torchrun's standalone mode starts them.
#pragma once

#include <string>
#include <vector>

namespace qhost {

/// Starts `nproc` copies of this executable with `args` (the command line
/// without --nproc) and torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR = 127.0.0.1 or $MASTER_ADDR, MASTER_PORT = a
/// free port or $MASTER_PORT), and a rendezvous that opens no port:
/// QTOOL_RENDEZVOUS_FILE = a c10d FileStore in a fresh 0700 temporary folder
/// (removed at the end), QTOOL_JOB_ID = "local-<launcher pid>" and a random
/// QTOOL_JOB_TOKEN. Their output is forwarded line by line with a
/// "[rank k] " prefix. When one rank fails, the launcher names it, stops the
/// others (SIGTERM, then SIGKILL after `grace_s`) and returns that rank's exit
/// code; SIGINT/SIGTERM to the launcher reach every rank. Returns 0 when all succeed.
int launch_local_ranks(int nproc, const std::vector<std::string>& args, int grace_s = 10);

/// A TCP port on 127.0.0.1 that was free a moment ago.
int free_local_port();

}  // namespace qhost
