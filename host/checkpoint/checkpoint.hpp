// checkpoint.hpp - HDF5 checkpoints (docs/design.md#checkpoints): atomic write, strict and
// lenient loading, with qsdk::Error(checkpoint) naming the file and the entry.
#pragma once

#include "checkpoint/checkpoint_meta.hpp"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qhost {

/// A list of (name, tensor) pairs in a stable order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Everything a checkpoint holds.
struct CheckpointData {
  CheckpointMeta meta;     ///< `/meta` attributes
  NamedTensors model;      ///< parameters and buffers by dotted module path (`layer1.0.conv1.weight`)
  NamedTensors optimizer;  ///< optimizer state as `<dotted parameter name>/<state name>`
  std::string metrics_jsonl;  ///< metric history, one JSON object per line
  /// `/integer` (integer models only, docs/integer-model.md#layout): datasets
  /// by slash-separated path below the group, written and read as given.
  NamedTensors integer;
};

/// Writes `data` to `path` atomically: the HDF5 file is built in memory, written
/// to a temporary file in the same folder with checked write/fsync/close calls
/// and renamed over `path`, so a crash leaves either the previous file or the new one. Any failed step (write, flush, close,
/// fsync, rename) throws qsdk::Error(checkpoint) naming `path`, removes the
/// temporary file and leaves the previous `path` untouched. In test builds
/// (test_seams.hpp) the environment variable QTOOL_TEST_CRASH_AFTER_TEMP=1 aborts the
/// process after the temporary file is complete and before the rename (used by the crash test).
void write_checkpoint(const std::string& path, const CheckpointData& data);

/// How a checkpoint is read. Checkpoints come from strangers (docs/design.md#checkpoints):
/// every entry is checked against what the reader expects before any tensor
/// data is allocated, so a hostile file ends in a qsdk::Error(checkpoint).
struct CheckpointReadOptions {
  /// The module the checkpoint is for. When set, `/model` names, shapes and
  /// dtypes are checked against its parameters and buffers BEFORE any data is
  /// read, and no read is larger than the module's own tensor. When null, the
  /// total data read is capped by `max_bytes_without_model`.
  const torch::nn::Module* model = nullptr;
  /// With a model: false (resume, eval, KD teacher) refuses unknown, missing,
  /// shape- or dtype-mismatched entries, listing a few; true (train.init_from)
  /// reads only entries whose (`module.`-stripped) name and element count fit the
  /// model and returns the others as data-less tensors on the meta device
  /// (shape and dtype only), which init_module_from() reports as unused or mismatched.
  bool lenient = false;
  /// Read `/optimizer` (only resume needs it).
  bool read_optimizer = true;
  /// Accept NaN/inf in `/model` tensors (`--allow-nonfinite`, for debugging a
  /// diverged run); otherwise the first such tensor is named in an error.
  bool allow_nonfinite = false;
  /// Cap on all tensor bytes of a read without a model (tests, tools).
  int64_t max_bytes_without_model = int64_t{2} << 30;
  /// Read an integer model (meta content "integer-model"): `/integer` too.
  /// Without it such a file is refused (it is no training checkpoint).
  bool read_integer = false;
  /// With a model: its entries that the file must not hold in `/model` (an
  /// integer model's quantized weights, stored as codes in `/integer`).
  std::set<std::string> absent;
  /// Called for every `/integer` dataset (path below the group, shape, dtype)
  /// before any data is read; throws qsdk::Error(checkpoint) for an entry the
  /// reader does not expect or one larger than it allows. Required with read_integer.
  std::function<void(const std::string& path, const std::vector<int64_t>& sizes, torch::ScalarType dtype)>
      check_integer;
};

/// Reads a checkpoint. Throws qsdk::Error(checkpoint) naming the file (and
/// entry) when it is missing, not HDF5, of another format version, damaged or
/// hostile: attributes of the wrong rank/type/size, soft or external links,
/// link cycles, external or virtual storage, unknown or ill-shaped entries,
/// data larger than the model's, NaN/inf parameters (see CheckpointReadOptions).
CheckpointData read_checkpoint(const std::string& path, const CheckpointReadOptions& options = {});

/// Every parameter and buffer of `module`, dotted names, in registration order.
NamedTensors module_state(const torch::nn::Module& module);

/// Copies `state` into `module` exactly: every parameter and buffer must be
/// present with the same shape and no entry may be left over. Collects all
/// problems and throws one qsdk::Error(checkpoint) naming `origin` (the file).
/// A buffer of the module that is still empty (lazily shaped) takes the stored shape.
void load_module_state(torch::nn::Module& module, const NamedTensors& state, const std::string& origin);

/// What a lenient initialisation (FP -> quantized finetune) did.
struct InitReport {
  std::vector<std::string> matched;   ///< copied (after a reshape with equal element count if needed)
  std::vector<std::string> reshaped;  ///< subset of matched that needed a reshape
  std::vector<std::string> missing;   ///< in the model, not in the checkpoint: keep their init
  std::vector<std::string> mismatched;  ///< same name, incompatible shape: kept their init
  std::vector<std::string> unused;    ///< in the checkpoint, not in the model
  /// Several lines for the log.
  std::string summary() const;
};

/// The reference's lenient loader (docs/training.md#resume-and-pretrained-loading): a leading `module.` is dropped,
/// names present in both are copied (reshaping when the element count
/// matches), everything else is reported.
InitReport init_module_from(torch::nn::Module& module, const NamedTensors& state);

}  // namespace qhost
