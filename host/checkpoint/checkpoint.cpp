// HDF5 C API rather than the C++ one: it is the stable, always-packaged
// interface. Writing is here; reading's HDF5 side (checks, link walk, raw
// reads) is the LibTorch-free checkpoint_h5.cpp, which this file turns into tensors.
#include "checkpoint/checkpoint.hpp"

#include "checkpoint_h5.hpp"

#include "platform/test_seams.hpp"

#include <qsdk/error.hpp>
#include <qsdk/version.hpp>

#include <hdf5.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

namespace qhost {
namespace {

namespace fs = std::filesystem;

using h5::check;
using h5::fail;
using h5::Handle;
using h5::silence_hdf5;

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

// Sizes as LibTorch prints them, for messages.
std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}


std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// fsync(2) of a file or folder; the error text ("" on success).
std::string fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return std::string("cannot open it to fsync: ") + std::strerror(errno);
  std::string error;
  if (::fsync(fd) != 0) error = std::string("fsync failed: ") + std::strerror(errno);
  if (::close(fd) != 0 && error.empty()) error = std::string("close failed: ") + std::strerror(errno);
  return error;
}

// Bob Jenkins' lookup3 hash (public domain), byte-wise, as HDF5 checksums metadata.
uint32_t lookup3(const uint8_t* k, size_t length) {
  auto rot = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  auto word = [](const uint8_t* p, size_t n) {  // up to 4 little-endian bytes
    uint32_t w = 0;
    for (size_t i = 0; i < n && i < 4; ++i) w |= static_cast<uint32_t>(p[i]) << (8 * i);
    return w;
  };
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + static_cast<uint32_t>(length);
  while (length > 12) {
    a += word(k, 4);
    b += word(k + 4, 4);
    c += word(k + 8, 4);
    a -= c; a ^= rot(c, 4); c += b;
    b -= a; b ^= rot(a, 6); a += c;
    c -= b; c ^= rot(b, 8); b += a;
    a -= c; a ^= rot(c, 16); c += b;
    b -= a; b ^= rot(a, 19); a += c;
    c -= b; c ^= rot(b, 4); b += a;
    length -= 12;
    k += 12;
  }
  if (length == 0) return c;
  a += word(k, std::min<size_t>(length, 4));
  if (length > 4) b += word(k + 4, std::min<size_t>(length - 4, 4));
  if (length > 8) c += word(k + 8, length - 8);
  c ^= b; c -= rot(b, 14);
  a ^= c; a -= rot(c, 11);
  b ^= a; b -= rot(a, 25);
  c ^= b; c -= rot(b, 16);
  a ^= c; a -= rot(c, 4);
  b ^= a; b -= rot(a, 14);
  c ^= b; c -= rot(b, 24);
  return c;
}

// H5Fget_file_image() of a file with a version 2/3 superblock (libver >= 1.8,
// as written here) clears the "open for writing" flags in the copy but keeps
// the checksum computed with them set (HDF5 1.10), so the image would not
// open: the superblock checksum is recomputed. Returns false when the image
// does not start with such a superblock.
bool fix_superblock_checksum(std::vector<char>& image) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  if (image.size() < 12 || std::memcmp(image.data(), kSignature, 8) != 0) return false;
  const int version = static_cast<uint8_t>(image[8]);
  if (version < 2) return true;  // no checksum in versions 0 and 1
  // signature, version, size of offsets, size of lengths, flags, 4 addresses, checksum
  const size_t offsets = static_cast<uint8_t>(image[9]);
  const size_t at = 12 + 4 * offsets;
  if (image.size() < at + 4) return false;
  const uint32_t sum = lookup3(reinterpret_cast<const uint8_t*>(image.data()), at);
  for (int i = 0; i < 4; ++i) image[at + static_cast<size_t>(i)] = static_cast<char>((sum >> (8 * i)) & 0xff);
  return true;
}

// Writes `bytes` to a new file `path`, fsyncs and closes it; the error text ("" on success).
std::string write_file(const std::string& path, const std::vector<char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::string("cannot create it: ") + std::strerror(errno);
  std::string error;
  for (size_t done = 0; done < bytes.size() && error.empty();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) error = std::string("write failed: ") + (n < 0 ? std::strerror(errno) : "no progress");
    else done += static_cast<size_t>(n);
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::string("fsync failed: ") + std::strerror(errno);
  if (::close(fd) != 0 && error.empty()) error = std::string("close failed: ") + std::strerror(errno);
  return error;
}

// Removes the temporary file of a write that did not complete.
struct TempFile {
  std::string path;
  bool committed = false;
  ~TempFile() {
    if (committed) return;
    std::error_code ec;
    fs::remove(path, ec);
  }
};

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& data) {
  silence_hdf5();
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
  // Every failure below throws naming `path`; the guard then removes the
  // temporary file, and the previous `path` is never touched.
  TempFile guard{tmp};
  const std::string disk_hint = "is the disk full or the folder read-only? the previous checkpoint is kept";
  // The file is built in memory (HDF5's core driver, no backing store) and
  // written with plain POSIX calls whose every result is checked: HDF5 then
  // never does disk I/O itself, so a full disk cannot leave a half-closed HDF5
  // file behind (HDF5 1.10 crashes at exit on one whose close failed). Costs
  // one transient copy of the checkpoint in memory.
  std::vector<char> image;
  {
    // Files readable by HDF5 >= 1.8, which also allows attributes over 64 KiB
    // (a long resolved TOML) through dense attribute storage.
    Handle fapl = check(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "cannot create a property list");
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    if (H5Pset_fapl_core(fapl.get(), size_t{1} << 20, /*backing_store=*/0) < 0)
      fail(path, "cannot set up the in-memory HDF5 driver");
    Handle file = check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, path,
                        "cannot create the checkpoint in memory");
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
      if (!m.content.empty()) {
        write_string_attr(meta.get(), "content", m.content, place);
        write_scalar_attr<int64_t>(meta.get(), "content_version", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                   m.content_version, place);
      }
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
    if (!data.integer.empty()) {
      Handle integer = check(H5Gcreate2(file.get(), "integer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                             place, "cannot create /integer");
      for (const auto& [name, tensor] : data.integer)
        if (tensor.defined()) write_tensor(integer.get(), name, tensor, place + ":/integer");
    }
    {
      Handle metrics = check(H5Gcreate2(file.get(), "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                             place, "cannot create /metrics");
      write_string_dataset(metrics.get(), "history_jsonl", data.metrics_jsonl, place + ":/metrics");
    }
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) fail(path, "cannot complete the checkpoint in memory");
    const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
    if (size <= 0) fail(path, "cannot complete the checkpoint in memory");
    image.resize(static_cast<size_t>(size));
    if (H5Fget_file_image(file.get(), image.data(), image.size()) != size)
      fail(path, "cannot complete the checkpoint in memory");
    if (H5Fclose(file.release()) < 0) fail(path, "cannot complete the checkpoint in memory");
  }
  if (!fix_superblock_checksum(image)) fail(path, "the in-memory checkpoint has no HDF5 superblock");
  if (const std::string error = write_file(tmp, image); !error.empty())
    fail(path, "cannot write the checkpoint (temporary file " + tmp + "): " + error, disk_hint);
  image = std::vector<char>();
  if (test_seams::value("CRASH_AFTER_TEMP") == std::string("1")) std::abort();  // test hook: die before the rename
  fs::rename(tmp, target, ec);
  if (ec)
    fail(path, "cannot rename the new checkpoint into place: " + ec.message(), "check permissions of the run folder");
  guard.committed = true;
  if (const std::string error = fsync_path(dir.string(), O_RDONLY | O_DIRECTORY); !error.empty())
    fail(path, "was written but its folder could not be synced (" + error + ")", disk_hint);
}
namespace {

torch::ScalarType to_torch(h5::DType t) {
  switch (t) {
    case h5::DType::float32: return torch::kFloat32;
    case h5::DType::float64: return torch::kFloat64;
    case h5::DType::int32: return torch::kInt32;
    case h5::DType::int64: return torch::kInt64;
    case h5::DType::int8: return torch::kInt8;
    case h5::DType::uint8: return torch::kUInt8;
    case h5::DType::boolean: return torch::kBool;
  }
  return torch::kFloat32;
}

// What the HDF5 layer checks the file against: the module's parameters and buffers.
h5::ExpectedModel expected_model(const torch::nn::Module& module) {
  h5::ExpectedModel out;
  auto describe = [](const torch::Tensor& t, bool lazy) {
    return h5::ExpectedTensor{t.sizes().vec(), c10::isFloatingType(t.scalar_type()), c10::toString(t.scalar_type()),
                              lazy};
  };
  for (const auto& item : module.named_parameters(true)) {
    out.tensors[item.key()] = describe(item.value(), false);
    out.parameters[item.key()] = item.value().sizes().vec();
  }
  for (const auto& item : module.named_buffers(true))
    if (item.value().defined()) out.tensors[item.key()] = describe(item.value(), item.value().numel() == 0);
  return out;
}

// Reads one checked entry into a new tensor of exactly its size.
torch::Tensor read_tensor(const h5::CheckpointReader& reader, const h5::Entry& e, const std::string& place) {
  reader.check_stored(e, place);  // before allocating for it
  const bool is_bool = e.dtype == h5::DType::boolean;
  torch::Tensor t = torch::empty(e.sizes, torch::TensorOptions().dtype(is_bool ? torch::kUInt8 : to_torch(e.dtype)));
  reader.read_into(e, t.data_ptr(), t.nbytes(), place);
  if (is_bool) t = t.to(torch::kBool);
  return t;
}

}  // namespace

CheckpointData read_checkpoint(const std::string& path, const CheckpointReadOptions& options) {
  // The HDF5 layer describes and checks everything (no tensor data yet); then read.
  h5::ExpectedModel expected;
  if (options.model != nullptr) expected = expected_model(*options.model);
  for (const auto& name : options.absent) expected.tensors.erase(name);
  h5::ReadPlanOptions plan{options.model != nullptr ? &expected : nullptr, options.lenient, options.read_optimizer,
                           options.max_bytes_without_model};
  plan.read_integer = options.read_integer;
  if (options.check_integer)
    plan.check_integer = [&](const std::string& p, const std::vector<int64_t>& sizes, h5::DType dtype) {
      options.check_integer(p, sizes, to_torch(dtype));
    };
  const h5::CheckpointReader reader(path, plan);
  CheckpointData data;
  data.meta = reader.meta();
  for (size_t i = 0; i < reader.model().size(); ++i) {
    const h5::Entry& e = reader.model()[i];
    const std::string where = path + ":/model/" + e.path;
    torch::Tensor t;
    if (reader.model_readable()[i]) {
      t = read_tensor(reader, e, where);
      if (!options.allow_nonfinite && c10::isFloatingType(t.scalar_type()) && !torch::isfinite(t).all().item<bool>())
        fail(where, "holds NaN or infinite values",
             "the run diverged before this checkpoint was written; pass --allow-nonfinite to load it anyway "
             "(for debugging)");
    } else {
      t = torch::empty(e.sizes, torch::TensorOptions().dtype(to_torch(e.dtype)).device(torch::kMeta));  // shape only
    }
    data.model.emplace_back(slashes_to_dots(e.path), std::move(t));
  }
  for (const auto& e : reader.integer())
    data.integer.emplace_back(e.path, read_tensor(reader, e, path + ":/integer/" + e.path));
  for (const auto& e : reader.optimizer()) {
    const auto slash = e.path.rfind('/');
    data.optimizer.emplace_back(slashes_to_dots(e.path.substr(0, slash)) + e.path.substr(slash),
                                read_tensor(reader, e, path + ":/optimizer/" + e.path));
  }
  data.metrics_jsonl = reader.read_metrics();
  return data;
}

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters(true)) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(true))
    if (item.value().defined()) out.emplace_back(item.key(), item.value());
  return out;
}

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
    if (src.is_meta()) {
      problems.push_back("entry '" + name + "' was not read (lenient read)");
      return;
    }
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
    if (src.is_meta()) {  // not read by a lenient read_checkpoint(): shape or dtype does not fit
      report.mismatched.push_back(name + " " + shape_str(target.sizes()) + " vs " + shape_str(src.sizes()) + " " +
                                  c10::toString(src.scalar_type()));
      return;
    }
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
