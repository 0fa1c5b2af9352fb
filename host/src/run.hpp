// run.hpp - `qhost run` and `qhost eval` entry points (implemented by the runtime).
#pragma once

#include <string>
#include <vector>

namespace qhost {

class Config;
class Registry;
class PluginLoader;

/// How `qhost run` was asked to run.
struct RunOptions {
  bool resume = false;   ///< continue from <run dir>/last.h5
  bool smoke = false;    ///< two training steps and two eval batches (CTest)
  std::string out_dir;   ///< overrides [experiment] out_dir when non-empty
  int nproc = 1;         ///< local worker processes
  /// The command line a local rank is started with (globals, `run`, the run
  /// arguments without --nproc); used when nproc > 1.
  std::vector<std::string> rank_args;
};

/// Trains and evaluates a validated experiment; returns the process exit code.
int run_experiment(const Config& config, Registry& registry, const RunOptions& options);

/// What `qhost eval` evaluates.
struct EvalOptions {
  std::string checkpoint;               ///< HDF5 checkpoint path
  std::vector<std::string> overrides;   ///< --set overrides applied to its stored config
  std::string config_file;              ///< --config: the experiment that describes model, quantizers and
                                        ///< data (e.g. for weights converted by tools/torch2h5.py); empty =
                                        ///< the configuration stored in the checkpoint
  bool synthetic = false;               ///< --synthetic: random data of the same shape (Config::use_synthetic_data)
};

/// Evaluates a checkpoint on its (or an overridden) validation set; returns the exit code.
int eval_checkpoint(Registry& registry, PluginLoader& loader, const EvalOptions& options);

}  // namespace qhost
