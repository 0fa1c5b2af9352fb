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
  bool allow_nonfinite = false;  ///< --allow-nonfinite: load checkpoints holding NaN/inf (resume, init_from, KD teacher)
  bool overwrite = false;        ///< --overwrite: replace a run already in the folder
  bool reset_optimizer = false;  ///< --reset-optimizer: resume from a checkpoint without optimizer state
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
  bool trust_checkpoint_plugins = false;  ///< --trust-checkpoint-plugins: load plugin paths its config names
  bool allow_nonfinite = false;           ///< --allow-nonfinite: evaluate parameters holding NaN/inf
  int64_t max_batches = 0;                ///< --max-batches: only the first N evaluation batches (0 = all)
  std::string dump_logits;                ///< --dump-logits: write the logits [samples, classes] as float32 .npy
};

/// Throws qsdk::Error(checkpoint) when `config` (a checkpoint's stored
/// configuration `stored_toml` after --set overrides) still names a plugin path
/// (`[plugins] path`, or a `[plugins] load` entry that is a path) that the
/// checkpoint itself named and that is not (in) one of `user_dirs`, the folders
/// the user put on the plugin search path: loading a plugin runs its code.
void refuse_checkpoint_plugins(const std::string& stored_toml, const Config& config, const std::string& checkpoint,
                               const std::vector<std::string>& user_dirs);

/// Evaluates a checkpoint on its (or an overridden) validation set; returns the exit code.
/// Plugin paths named by the stored configuration are refused unless
/// `trust_checkpoint_plugins` (see refuse_checkpoint_plugins()).
int eval_checkpoint(Registry& registry, PluginLoader& loader, const EvalOptions& options);

}  // namespace qhost
