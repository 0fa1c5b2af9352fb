// checkpoint_h5.hpp - the HDF5 side of checkpoint reading (docs/design.md#checkpoints),
// LibTorch-free: opening the file, the `/meta` attributes, the link walk, the
// dataset checks against what the reader expects and the bounded raw reads.
// checkpoint.cpp turns what it reads into tensors; the `checkpoint` fuzz
// target (tests/fuzz/checkpoint_fuzz.cpp) drives the same code without
// LibTorch. Internal to qhost: only checkpoint.cpp and the fuzz target include it.
#pragma once

#include "checkpoint/checkpoint_meta.hpp"

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qhost::h5 {

/// Owns one HDF5 identifier and closes it with the matching function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = -1;
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  /// Gives up ownership (the caller closes it and checks the result).
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

/// Throws qsdk::Error(checkpoint).
[[noreturn]] void fail(const std::string& place, const std::string& message, const std::string& hint = "");

/// HDF5 prints its own error stack on failure; qtool reports errors itself.
void silence_hdf5();

/// `id` owned by a Handle; fail(place, what) when HDF5 returned an error.
Handle check(hid_t id, Handle::Closer closer, const std::string& place, const std::string& what);

/// The element types a checkpoint may store (what reading produces).
enum class DType { float32, float64, int32, int64, int8, uint8, boolean };
size_t element_size(DType t);
bool is_floating(DType t);
/// LibTorch's name of the type ("Float", "Long", ...), for messages.
const char* dtype_name(DType t);
/// The native HDF5 memory type a DType is read as (bool as uint8).
hid_t mem_type_of(DType t);

/// `[2, 3]`, as LibTorch prints sizes.
std::string shape_str(const std::vector<int64_t>& sizes);

/// One dataset below /model or /optimizer: described and checked, not read yet.
struct Entry {
  std::string path;  ///< relative to /model or /optimizer, slash separated
  Handle dset;
  std::vector<int64_t> sizes;
  int64_t numel = 0;
  DType dtype = DType::float32;  ///< what reading produces
  bool filtered = false;         ///< compressed: stored bytes may be fewer than numel * size
  int64_t bytes() const { return numel * static_cast<int64_t>(element_size(dtype)); }
};

/// What the model holds under one dotted name.
struct ExpectedTensor {
  std::vector<int64_t> sizes;
  bool floating = true;    ///< floating-point entries load only into floating-point tensors
  std::string dtype_name;  ///< LibTorch's name of the model's type, for messages
  bool lazy = false;       ///< an empty buffer that takes the stored shape
};

/// The module a checkpoint is read for, without LibTorch.
struct ExpectedModel {
  std::map<std::string, ExpectedTensor> tensors;           ///< parameters and buffers by dotted name
  std::map<std::string, std::vector<int64_t>> parameters;  ///< parameters only (optimizer state)
};

/// What CheckpointReader checks; see qhost::CheckpointReadOptions (checkpoint.hpp).
struct ReadPlanOptions {
  const ExpectedModel* model = nullptr;
  bool lenient = false;
  bool read_optimizer = true;
  int64_t max_bytes_without_model = int64_t{2} << 30;
  /// Read an integer model's `/integer` too (docs/integer-model.md); without it
  /// such a file is refused (it is no training checkpoint).
  bool read_integer = false;
  /// Required with read_integer: vets every `/integer` dataset (path below the
  /// group, shape, type) before any data is read; throws qsdk::Error(checkpoint).
  std::function<void(const std::string& path, const std::vector<int64_t>& sizes, DType dtype)> check_integer;
};

/// No HDF5 filter plugins while a checkpoint is read: a file must not make this
/// process load a library. The previous state is restored afterwards (a dataset
/// reader may rely on filter plugins for its own files).
class NoFilterPlugins {
 public:
  NoFilterPlugins();
  ~NoFilterPlugins();
  NoFilterPlugins(const NoFilterPlugins&) = delete;
  NoFilterPlugins& operator=(const NoFilterPlugins&) = delete;

 private:
  unsigned int saved_ = 0;
  bool saved_ok_ = false;
};

/// An open checkpoint whose `/meta` is read and whose `/model` and
/// `/optimizer` datasets are described and checked against `options` (names,
/// shapes, types, storage; or the total size without a model), all before any
/// tensor data is read. Throws qsdk::Error(checkpoint) naming the file and
/// entry, as read_checkpoint() documents.
class CheckpointReader {
 public:
  CheckpointReader(const std::string& path, const ReadPlanOptions& options);
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const CheckpointMeta& meta() const { return meta_; }
  /// Datasets below /model, depth first in name order.
  const std::vector<Entry>& model() const { return model_; }
  /// Whether model()[i] fits the model and may be read (always, unless lenient).
  const std::vector<bool>& model_readable() const { return read_it_; }
  /// Datasets below /optimizer (`<parameter path>/<state>`); empty unless read_optimizer.
  const std::vector<Entry>& optimizer() const { return opt_; }
  /// Datasets below /integer, each vetted by check_integer; empty unless read_integer.
  const std::vector<Entry>& integer() const { return integer_; }

  /// Fails unless `e` holds all its declared data (a never-written or
  /// truncated dataset would read as fill values). Call before allocating for it.
  void check_stored(const Entry& e, const std::string& place) const;
  /// Reads `e` (after check_stored) into `dst`, which holds exactly `dst_bytes`
  /// == e.bytes() bytes (bool as one byte 0/1 per element).
  void read_into(const Entry& e, void* dst, size_t dst_bytes, const std::string& place) const;
  /// The metric history text (`/metrics/history_jsonl`), "" when absent.
  std::string read_metrics() const;

 private:
  NoFilterPlugins no_plugins_;  // first: restored after every handle is closed
  std::string path_;
  Handle file_;
  CheckpointMeta meta_;
  std::vector<Entry> model_, opt_, integer_;
  std::vector<bool> read_it_;
};

}  // namespace qhost::h5
