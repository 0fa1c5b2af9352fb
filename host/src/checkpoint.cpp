// HDF5 C API rather than the C++ one: it is the stable, always-packaged
// interface, and every handle is closed by the small RAII type below.
#include "checkpoint.hpp"

#include <qsdk/error.hpp>
#include <qsdk/version.hpp>

#include <hdf5.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

namespace qhost {
namespace {

namespace fs = std::filesystem;

// Owns one HDF5 identifier and closes it with the matching function.
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
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

[[noreturn]] void fail(const std::string& place, const std::string& message, const std::string& hint = "") {
  throw qsdk::Error(qsdk::ErrorCategory::checkpoint, place, message, hint);
}

// HDF5 prints its own error stack on failure; qtool reports errors itself.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle check(hid_t id, Handle::Closer closer, const std::string& place, const std::string& what) {
  if (id < 0) fail(place, what);
  return Handle(id, closer);
}

std::string dots_to_slashes(std::string s) {
  for (char& c : s)
    if (c == '.') c = '/';
  return s;
}
std::string slashes_to_dots(std::string s) {
  for (char& c : s)
    if (c == '/') c = '.';
  return s;
}

hid_t file_type_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return H5T_IEEE_F32LE;
    case torch::kFloat64: return H5T_IEEE_F64LE;
    case torch::kInt32: return H5T_STD_I32LE;
    case torch::kInt64: return H5T_STD_I64LE;
    case torch::kInt8: return H5T_STD_I8LE;
    case torch::kUInt8:
    case torch::kBool: return H5T_STD_U8LE;
    default: return -1;
  }
}
hid_t mem_type_of(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return H5T_NATIVE_FLOAT;
    case torch::kFloat64: return H5T_NATIVE_DOUBLE;
    case torch::kInt32: return H5T_NATIVE_INT32;
    case torch::kInt64: return H5T_NATIVE_INT64;
    case torch::kInt8: return H5T_NATIVE_INT8;
    case torch::kUInt8:
    case torch::kBool: return H5T_NATIVE_UINT8;
    default: return -1;
  }
}

void write_string_attr(hid_t obj, const char* name, const std::string& value, const std::string& place) {
  Handle type = check(H5Tcopy(H5T_C_S1), H5Tclose, place, "cannot create a string type");
  H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space = check(H5Screate(H5S_SCALAR), H5Sclose, place, "cannot create a dataspace");
  Handle attr = check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      place, std::string("cannot create attribute ") + name);
  std::string buffer = value.empty() ? std::string(1, '\0') : value;
  if (H5Awrite(attr.get(), type.get(), buffer.data()) < 0) fail(place, std::string("cannot write attribute ") + name);
}

template <class T>
void write_scalar_attr(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, T value,
                       const std::string& place) {
  Handle space = check(H5Screate(H5S_SCALAR), H5Sclose, place, "cannot create a dataspace");
  Handle attr = check(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      place, std::string("cannot create attribute ") + name);
  if (H5Awrite(attr.get(), mem_type, &value) < 0) fail(place, std::string("cannot write attribute ") + name);
}

void write_bytes_attr(hid_t obj, const char* name, const std::vector<uint8_t>& bytes, const std::string& place) {
  hsize_t n = bytes.size();
  Handle space = check(H5Screate_simple(1, &n, nullptr), H5Sclose, place, "cannot create a dataspace");
  Handle attr = check(H5Acreate2(obj, name, H5T_STD_U8LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                      place, std::string("cannot create attribute ") + name);
  if (n > 0 && H5Awrite(attr.get(), H5T_NATIVE_UINT8, bytes.data()) < 0)
    fail(place, std::string("cannot write attribute ") + name);
}

void write_string_dataset(hid_t parent, const char* name, const std::string& value, const std::string& place) {
  Handle type = check(H5Tcopy(H5T_C_S1), H5Tclose, place, "cannot create a string type");
  H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space = check(H5Screate(H5S_SCALAR), H5Sclose, place, "cannot create a dataspace");
  Handle dset = check(H5Dcreate2(parent, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      H5Dclose, place, std::string("cannot create dataset ") + name);
  std::string buffer = value.empty() ? std::string(1, '\0') : value;
  if (H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
    fail(place, std::string("cannot write dataset ") + name);
}

void write_tensor(hid_t root, const std::string& rel_path, const torch::Tensor& tensor, const std::string& place) {
  const std::string where = place + ":" + rel_path;
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  const bool is_bool = t.scalar_type() == torch::kBool;
  if (is_bool) t = t.to(torch::kUInt8);
  const hid_t ftype = file_type_of(t.scalar_type());
  if (ftype < 0) fail(where, std::string("unsupported tensor dtype ") + c10::toString(t.scalar_type()));
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space = dims.empty() ? check(H5Screate(H5S_SCALAR), H5Sclose, where, "cannot create a dataspace")
                              : check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                      H5Sclose, where, "cannot create a dataspace");
  Handle lcpl = check(H5Pcreate(H5P_LINK_CREATE), H5Pclose, where, "cannot create a property list");
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Handle dset = check(H5Dcreate2(root, rel_path.c_str(), ftype, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                      H5Dclose, where, "cannot create dataset (duplicate name?)");
  if (t.numel() > 0 &&
      H5Dwrite(dset.get(), mem_type_of(t.scalar_type()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    fail(where, "cannot write dataset");
  if (is_bool) write_string_attr(dset.get(), "torch_dtype", "bool", where);
}

// ---------------------------------------------------------------- reading

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string read_string_attr(hid_t obj, const char* name, const std::string& place) {
  if (!has_attr(obj, name)) fail(place, std::string("missing attribute '") + name + "'",
                                 "the file was not written by qhost, or is damaged");
  Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, place, std::string("cannot open attribute ") + name);
  Handle type = check(H5Aget_type(attr.get()), H5Tclose, place, std::string("cannot read attribute ") + name);
  if (H5Tget_class(type.get()) != H5T_STRING) fail(place, std::string("attribute '") + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* value = nullptr;
    Handle mem = check(H5Tcopy(H5T_C_S1), H5Tclose, place, "cannot create a string type");
    H5Tset_size(mem.get(), H5T_VARIABLE);
    if (H5Aread(attr.get(), mem.get(), &value) < 0) fail(place, std::string("cannot read attribute ") + name);
    std::string out = value != nullptr ? value : "";
    H5free_memory(value);
    return out;
  }
  std::string buffer(H5Tget_size(type.get()), '\0');
  if (H5Aread(attr.get(), type.get(), buffer.data()) < 0) fail(place, std::string("cannot read attribute ") + name);
  return std::string(buffer.c_str(), strnlen(buffer.data(), buffer.size()));
}

template <class T>
T read_scalar_attr(hid_t obj, const char* name, hid_t mem_type, const std::string& place) {
  if (!has_attr(obj, name)) fail(place, std::string("missing attribute '") + name + "'",
                                 "the file was not written by qhost, or is damaged");
  Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, place, std::string("cannot open attribute ") + name);
  T value{};
  if (H5Aread(attr.get(), mem_type, &value) < 0) fail(place, std::string("cannot read attribute ") + name);
  return value;
}

std::vector<uint8_t> read_bytes_attr(hid_t obj, const char* name, const std::string& place) {
  if (!has_attr(obj, name)) return {};
  Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, place, std::string("cannot open attribute ") + name);
  Handle space = check(H5Aget_space(attr.get()), H5Sclose, place, std::string("cannot read attribute ") + name);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<uint8_t> out(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_UINT8, out.data()) < 0)
    fail(place, std::string("cannot read attribute ") + name);
  return out;
}

std::string read_string_dataset(hid_t dset, const std::string& place) {
  Handle type = check(H5Dget_type(dset), H5Tclose, place, "cannot read the dataset type");
  if (H5Tget_class(type.get()) != H5T_STRING) fail(place, "is not a string dataset");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* value = nullptr;
    Handle mem = check(H5Tcopy(H5T_C_S1), H5Tclose, place, "cannot create a string type");
    H5Tset_size(mem.get(), H5T_VARIABLE);
    if (H5Dread(dset, mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) fail(place, "cannot read");
    std::string out = value != nullptr ? value : "";
    H5free_memory(value);
    return out;
  }
  std::string buffer(H5Tget_size(type.get()), '\0');
  if (H5Dread(dset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) fail(place, "cannot read");
  return std::string(buffer.c_str(), strnlen(buffer.data(), buffer.size()));
}

torch::Tensor read_tensor(hid_t dset, const std::string& place) {
  Handle type = check(H5Dget_type(dset), H5Tclose, place, "cannot read the dataset type");
  Handle space = check(H5Dget_space(dset), H5Sclose, place, "cannot read the dataspace");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(place, "cannot read the dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  torch::ScalarType st;
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT) {
    st = size == 8 ? torch::kFloat64 : torch::kFloat32;
  } else if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
    if (size == 8) st = torch::kInt64;
    else if (size == 4) st = torch::kInt32;
    else if (size == 1) st = is_signed ? torch::kInt8 : torch::kUInt8;
    else fail(place, "unsupported integer size " + std::to_string(size));
  } else {
    fail(place, "unsupported dataset type (class " + std::to_string(static_cast<int>(cls)) + ")");
  }
  torch::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(st));
  if (t.numel() > 0 && H5Dread(dset, mem_type_of(st), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    fail(place, "cannot read the data (file damaged?)");
  if (has_attr(dset, "torch_dtype") && read_string_attr(dset, "torch_dtype", place) == "bool") t = t.to(torch::kBool);
  return t;
}

// Collects every dataset below `group` as (relative path, tensor), depth first
// in name order. Uses only version-stable calls (no H5Lvisit/H5Ovisit, whose
// signatures changed between HDF5 1.10 and 1.12).
void collect(hid_t group, const std::string& prefix, const std::string& place,
             std::vector<std::pair<std::string, torch::Tensor>>& out) {
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) fail(place + ":" + prefix, "cannot list the group");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail(place + ":" + prefix, "cannot read a link name");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    Handle obj(H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) fail(place + ":" + path, "cannot open entry");
    const H5I_type_t kind = H5Iget_type(obj.get());
    if (kind == H5I_GROUP) collect(obj.get(), path, place, out);
    else if (kind == H5I_DATASET) out.emplace_back(path, read_tensor(obj.get(), place + ":" + path));
  }
}

Handle open_for_reading(const std::string& path) {
  silence_hdf5();
  std::error_code ec;
  if (!fs::exists(path, ec))
    fail(path, "checkpoint file not found",
         "check the path; a run writes <out_dir>/<name>/last.h5 and best.h5");
  if (fs::is_directory(path, ec)) fail(path, "is a directory, not a checkpoint file");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    fail(path, "is not an HDF5 file (truncated, or not a qtool checkpoint)",
         "PyTorch .pth files must be converted first (tools/)");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) fail(path, "cannot open the HDF5 file (damaged?)");
  if (H5Lexists(file.get(), "meta", H5P_DEFAULT) <= 0)
    fail(path + ":/meta", "missing; this HDF5 file is not a qtool checkpoint");
  return file;
}

CheckpointMeta read_meta(hid_t file, const std::string& path) {
  const std::string place = path + ":/meta";
  Handle meta = check(H5Gopen2(file, "meta", H5P_DEFAULT), H5Gclose, place, "cannot open the group");
  CheckpointMeta m;
  m.format_version = read_scalar_attr<int64_t>(meta.get(), "format_version", H5T_NATIVE_INT64, place);
  if (m.format_version != kCheckpointFormatVersion)
    fail(place + "/format_version",
         "format version " + std::to_string(m.format_version) + ", this qhost reads version " +
             std::to_string(kCheckpointFormatVersion),
         "use the qhost version that wrote it (" +
             (has_attr(meta.get(), "qtool_version") ? read_string_attr(meta.get(), "qtool_version", place) : "?") +
             ")");
  m.qtool_version = read_string_attr(meta.get(), "qtool_version", place);
  m.sdk_version = read_string_attr(meta.get(), "sdk_version", place);
  m.torch_version = read_string_attr(meta.get(), "torch_version", place);
  m.epoch = read_scalar_attr<int64_t>(meta.get(), "epoch", H5T_NATIVE_INT64, place);
  m.step = read_scalar_attr<int64_t>(meta.get(), "step", H5T_NATIVE_INT64, place);
  m.best_top1 = read_scalar_attr<double>(meta.get(), "best_top1", H5T_NATIVE_DOUBLE, place);
  m.resolved_toml = read_string_attr(meta.get(), "resolved_toml", place);
  m.optimizer_type = read_string_attr(meta.get(), "optimizer_type", place);
  m.rng_text = read_string_attr(meta.get(), "rng_text", place);
  m.torch_rng_state = read_bytes_attr(meta.get(), "torch_rng_state", place);
  return m;
}

std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& data) {
  silence_hdf5();
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
  {
    // Files readable by HDF5 >= 1.8, which also allows attributes over 64 KiB
    // (a long resolved TOML) through dense attribute storage.
    Handle fapl = check(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, tmp, "cannot create a property list");
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    Handle file = check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, tmp,
                        "cannot create the checkpoint file (folder writable? disk full?)");
    const std::string place = path;
    {
      Handle meta = check(H5Gcreate2(file.get(), "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, place,
                          "cannot create /meta");
      const CheckpointMeta& m = data.meta;
      write_scalar_attr<int64_t>(meta.get(), "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                 kCheckpointFormatVersion, place);
      write_string_attr(meta.get(), "qtool_version", QTOOL_VERSION, place);
      write_string_attr(meta.get(), "sdk_version", qsdk::version_string(qsdk::sdk_version()), place);
      write_string_attr(meta.get(), "torch_version", torch_version_string(), place);
      write_scalar_attr<int64_t>(meta.get(), "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, m.epoch, place);
      write_scalar_attr<int64_t>(meta.get(), "step", H5T_STD_I64LE, H5T_NATIVE_INT64, m.step, place);
      write_scalar_attr<double>(meta.get(), "best_top1", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, m.best_top1, place);
      write_string_attr(meta.get(), "resolved_toml", m.resolved_toml, place);
      write_string_attr(meta.get(), "optimizer_type", m.optimizer_type, place);
      write_string_attr(meta.get(), "rng_text", m.rng_text, place);
      write_bytes_attr(meta.get(), "torch_rng_state", m.torch_rng_state, place);
    }
    {
      Handle model = check(H5Gcreate2(file.get(), "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, place,
                           "cannot create /model");
      for (const auto& [name, tensor] : data.model)
        if (tensor.defined()) write_tensor(model.get(), dots_to_slashes(name), tensor, place + ":/model");
    }
    {
      Handle opt = check(H5Gcreate2(file.get(), "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                         place, "cannot create /optimizer");
      for (const auto& [key, tensor] : data.optimizer) {
        const auto slash = key.rfind('/');
        if (slash == std::string::npos) fail(place + ":/optimizer/" + key, "optimizer entry without a state name");
        if (tensor.defined())
          write_tensor(opt.get(), dots_to_slashes(key.substr(0, slash)) + key.substr(slash), tensor,
                       place + ":/optimizer");
      }
    }
    {
      Handle metrics = check(H5Gcreate2(file.get(), "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                             place, "cannot create /metrics");
      write_string_dataset(metrics.get(), "history_jsonl", data.metrics_jsonl, place + ":/metrics");
    }
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) fail(tmp, "cannot flush the checkpoint (disk full?)");
  }
  fsync_path(tmp, O_RDONLY);
  const char* crash = std::getenv("QTOOL_TEST_CRASH_AFTER_TEMP");
  if (crash != nullptr && std::string(crash) == "1") std::abort();  // test hook: die before the rename
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot rename the new checkpoint into place",
                      "check permissions of the run folder");
  }
  fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  Handle file = open_for_reading(path);
  return read_meta(file.get(), path);
}

CheckpointData read_checkpoint(const std::string& path) {
  Handle file = open_for_reading(path);
  CheckpointData data;
  data.meta = read_meta(file.get(), path);
  if (H5Lexists(file.get(), "model", H5P_DEFAULT) <= 0) fail(path + ":/model", "missing", "the file is damaged");
  {
    Handle model = check(H5Gopen2(file.get(), "model", H5P_DEFAULT), H5Gclose, path + ":/model", "cannot open");
    NamedTensors raw;
    collect(model.get(), "", path + ":/model", raw);
    for (auto& [p, t] : raw) data.model.emplace_back(slashes_to_dots(p), std::move(t));
  }
  if (H5Lexists(file.get(), "optimizer", H5P_DEFAULT) > 0) {
    Handle opt = check(H5Gopen2(file.get(), "optimizer", H5P_DEFAULT), H5Gclose, path + ":/optimizer", "cannot open");
    NamedTensors raw;
    collect(opt.get(), "", path + ":/optimizer", raw);
    for (auto& [p, t] : raw) {
      const auto slash = p.rfind('/');
      if (slash == std::string::npos) fail(path + ":/optimizer/" + p, "optimizer entry without a parameter name");
      data.optimizer.emplace_back(slashes_to_dots(p.substr(0, slash)) + p.substr(slash), std::move(t));
    }
  }
  if (H5Lexists(file.get(), "metrics", H5P_DEFAULT) > 0 &&
      H5Lexists(file.get(), "metrics/history_jsonl", H5P_DEFAULT) > 0) {
    Handle dset = check(H5Dopen2(file.get(), "metrics/history_jsonl", H5P_DEFAULT), H5Dclose,
                        path + ":/metrics/history_jsonl", "cannot open");
    data.metrics_jsonl = read_string_dataset(dset.get(), path + ":/metrics/history_jsonl");
  }
  return data;
}

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters(true)) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(true))
    if (item.value().defined()) out.emplace_back(item.key(), item.value());
  return out;
}

namespace {
std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}
}  // namespace

void load_module_state(torch::nn::Module& module, const NamedTensors& state, const std::string& origin) {
  std::map<std::string, const torch::Tensor*> stored;
  for (const auto& [name, t] : state) stored[name] = &t;
  std::vector<std::string> problems;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, torch::Tensor& target, bool is_buffer) {
    auto it = stored.find(name);
    if (it == stored.end()) {
      problems.push_back("missing entry '" + name + "' (shape " + shape_str(target.sizes()) + ")");
      return;
    }
    used.insert(name);
    const torch::Tensor& src = *it->second;
    if (src.sizes() != target.sizes()) {
      if (is_buffer && target.numel() == 0) {
        target.set_data(src.to(target.options()).clone());
        return;
      }
      problems.push_back("shape mismatch for '" + name + "': model has " + shape_str(target.sizes()) +
                         ", checkpoint has " + shape_str(src.sizes()));
      return;
    }
    target.copy_(src.to(target.scalar_type()));
  };
  for (auto& item : module.named_parameters(true)) assign(item.key(), item.value(), false);
  for (auto& item : module.named_buffers(true))
    if (item.value().defined()) assign(item.key(), item.value(), true);
  for (const auto& [name, t] : state)
    if (used.count(name) == 0) problems.push_back("unused entry '" + name + "' (not in the model)");
  if (!problems.empty()) {
    std::string msg = "does not fit the model (" + std::to_string(problems.size()) + " problem" +
                      (problems.size() > 1 ? "s" : "") + "):";
    for (const auto& p : problems) msg += "\n  " + p;
    fail(origin, msg, "the checkpoint was written for another model or configuration; use [train] init_from "
                      "for a lenient initialisation");
  }
}

std::string InitReport::summary() const {
  std::ostringstream o;
  o << "initialised " << matched.size() << " tensors (" << reshaped.size() << " reshaped); " << missing.size()
    << " missing (keep their init); " << mismatched.size() << " with another shape (keep their init); "
    << unused.size() << " unused";
  // A long list (e.g. every quantizer's state when an FP checkpoint initialises
  // a quantized model) is summarised by the names' last component.
  auto list = [&o](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    o << "\n  " << what << ":";
    constexpr size_t kListAll = 12;
    if (names.size() <= kListAll) {
      for (const auto& n : names) o << " " << n;
      return;
    }
    std::map<std::string, size_t> by_leaf;
    for (const auto& n : names) ++by_leaf[n.substr(n.rfind('.') + 1)];
    const char* sep = " ";
    for (const auto& [leaf, count] : by_leaf) {
      o << sep << count << " x *." << leaf;
      sep = ", ";
    }
    o << " (first: " << names.front() << ")";
  };
  list("missing", missing);
  list("shape mismatch", mismatched);
  list("unused", unused);
  return o.str();
}

InitReport init_module_from(torch::nn::Module& module, const NamedTensors& state) {
  // The reference drops the DataParallel `module.` prefix when the first key has it.
  const bool strip = !state.empty() && state.front().first.rfind("module.", 0) == 0;
  std::map<std::string, const torch::Tensor*> stored;
  for (const auto& [name, t] : state) stored[strip && name.rfind("module.", 0) == 0 ? name.substr(7) : name] = &t;
  InitReport report;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto visit = [&](const std::string& name, torch::Tensor& target) {
    auto it = stored.find(name);
    if (it == stored.end()) {
      report.missing.push_back(name);
      return;
    }
    used.insert(name);
    const torch::Tensor& src = *it->second;
    if (src.sizes() == target.sizes()) {
      target.copy_(src.to(target.scalar_type()));
      report.matched.push_back(name);
    } else if (src.numel() == target.numel()) {
      target.copy_(src.reshape(target.sizes()).to(target.scalar_type()));
      report.matched.push_back(name);
      report.reshaped.push_back(name);
    } else {
      report.mismatched.push_back(name + " " + shape_str(target.sizes()) + " vs " + shape_str(src.sizes()));
    }
  };
  for (auto& item : module.named_parameters(true)) visit(item.key(), item.value());
  for (auto& item : module.named_buffers(true))
    if (item.value().defined()) visit(item.key(), item.value());
  for (const auto& [name, t] : stored)
    if (used.count(name) == 0) report.unused.push_back(name);
  return report;
}

}  // namespace qhost
