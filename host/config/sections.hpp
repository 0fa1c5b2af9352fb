// sections.hpp - the TOML sections qhost owns and the host keys they carry.
// Each section's options struct is bound to a qsdk::Schema, so other host
// modules append a field in one place (sections.cpp) and get validation,
// defaults in resolved.toml and typed access together.
#pragma once

#include <qsdk/kind.hpp>
#include <qsdk/schema.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// `[experiment]`
struct ExperimentOptions {
  std::string name;              ///< run name; "" = the experiment file's stem
  int64_t seed = 0;              ///< global seed
  std::string out_dir = "runs";  ///< parent of the run folder
  int64_t threads = 0;           ///< intra-op threads, 0 = all cores
  std::string device = "auto";   ///< auto | cpu | cuda | cuda:N
  int64_t log_every = 50;        ///< log a line every N steps
  bool flush_denormal = true;    ///< CPU: flush denormal floats to zero (FTZ/DAZ)
  /// The schema of `[experiment]`.
  static qsdk::Schema<ExperimentOptions> schema();
};

/// `[plugins]`
struct PluginsOptions {
  std::vector<std::string> path;  ///< extra plugin folders, relative to the TOML file
  std::vector<std::string> load;  ///< plugins to load; empty = every plugin on the search path
  /// The schema of `[plugins]`.
  static qsdk::Schema<PluginsOptions> schema();
};

/// Host keys of `[data]` (the rest of the table is the dataset component).
struct DataOptions {
  int64_t batch_size = 128;     ///< per-rank training batch
  int64_t eval_batch_size = 0;  ///< 0 = batch_size
  int64_t workers = 2;          ///< decode/augment threads
  int64_t prefetch = 4;         ///< batches prepared ahead
  bool drop_last = true;        ///< drop the last incomplete training batch
  int64_t wait_timeout_s = 600; ///< a batch not ready within this many seconds ends the run (0 = wait forever)
  /// The schema of the host keys of `[data]`.
  static qsdk::Schema<DataOptions> schema();
};

/// Host keys of `[quant]` (sub-tables weight/activation/output and
/// `[[quant.override]]` are validated separately).
struct QuantOptions {
  bool padding_after_quant = false;  ///< pad after (not before) activation quantization
  bool real_skip = false;            ///< keep shortcut convolutions full precision
  bool quantize_stem = false;        ///< quantize the first convolution too
  bool quantize_head = false;        ///< quantize the classifier too
  /// The schema of the host keys of `[quant]`.
  static qsdk::Schema<QuantOptions> schema();
};

/// `[train]`
struct TrainOptions {
  int64_t epochs = 1;               ///< training epochs
  int64_t max_steps_per_epoch = 0;  ///< 0 = the whole dataset
  int64_t eval_every = 1;           ///< evaluate every N epochs
  int64_t save_every = 1;           ///< write last.h5 every N epochs
  std::string init_from;            ///< FP checkpoint to initialise from ("" = none)
  std::string precision = "fp32";   ///< fp32 | bf16 | fp16 (autocast; quantizers stay fp32)
  bool channels_last = false;       ///< NHWC weights and inputs
  bool cudnn_benchmark = false;     ///< cuDNN autotuner (CUDA only)
  /// The schema of `[train]`.
  static qsdk::Schema<TrainOptions> schema();
};

/// `[optimizer]` (a host enum, not a plugin)
struct OptimizerOptions {
  std::string type = "sgd";     ///< sgd | adam
  double lr = 0.1;              ///< base learning rate
  double momentum = 0.9;        ///< SGD momentum
  bool nesterov = false;        ///< Nesterov momentum
  double weight_decay = 1e-4;   ///< L2 weight decay
  bool decay_small = false;     ///< also decay 1-D parameters (BN, biases, quantizer scales)
  double beta1 = 0.9;           ///< Adam beta1
  double beta2 = 0.999;         ///< Adam beta2
  double eps = 1e-8;            ///< Adam epsilon
  std::vector<std::string> custom_lr_list;     ///< (runtime) name substrings that get custom_lr
  double custom_lr = 1e-5;                     ///< (runtime) lr of those parameters
  std::vector<std::string> custom_decay_list;  ///< (runtime) name substrings that get custom_decay
  double custom_decay = 0.02;                  ///< (runtime) weight decay of those parameters
  /// The schema of `[optimizer]`.
  static qsdk::Schema<OptimizerOptions> schema();
};

/// `[distributed]`
struct DistributedOptions {
  std::string backend = "auto";  ///< auto (gloo on CPU, nccl on CUDA) | gloo | nccl
  int64_t timeout_s = 300;       ///< rendezvous, collective and heartbeat timeout
  bool sync_bn = false;          ///< synchronise batch-norm statistics
  double bucket_mb = 25.0;       ///< gradient all-reduce bucket size
  bool broadcast_buffers = true; ///< rank 0's buffers to every rank after each step
  int64_t verify_every = 0;      ///< check every N steps that all ranks hold rank 0's model (0 = never)
  /// The schema of `[distributed]`.
  static qsdk::Schema<DistributedOptions> schema();
};

/// What a top-level section holds.
struct SectionSpec {
  std::string name;                     ///< "data"
  qsdk::SchemaInfo host_keys;           ///< keys qhost owns in it (may be empty)
  std::optional<qsdk::Kind> component;  ///< the component kind its `type` names, if any
  bool array = false;                   ///< `[[name]]`: a list of component tables
  bool required = false;                ///< must be present for `qhost run`
};

/// Every top-level section, in resolved.toml order.
const std::vector<SectionSpec>& sections();
/// The section called `name`, or nullptr.
const SectionSpec* find_section(const std::string& name);

/// Sub-tables of `[quant]` holding quantizer components ("weight", "activation", "output").
const std::vector<std::string>& quant_targets();
/// Layer roles a `[[quant.override]]` match may name.
const std::vector<std::string>& layer_roles();

/// Table `name` of `root`, or an empty table when it is absent or not a table.
const qsdk::Table& section_table(const qsdk::Table& root, const std::string& name);
/// True when `component` names a plugin: a non-empty `type` other than "none".
bool names_a_plugin(const qsdk::Table& component);

/// Typed view of a validated section, e.g.
/// `auto train = section_options<TrainOptions>(config.root(), "train");`
template <class T>
T section_options(const qsdk::Table& root, const std::string& section) {
  auto it = root.find(section);
  if (it == root.end()) return T{};
  return T::schema().bind(it->second.as_table());
}

}  // namespace qhost
