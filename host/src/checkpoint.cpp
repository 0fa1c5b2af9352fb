// HDF5 C API rather than the C++ one: it is the stable, always-packaged
// interface, and every handle is closed by the small RAII type below.
#include "checkpoint.hpp"

#include "test_seams.hpp"

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
//
// Checkpoints come from strangers (docs/design.md#checkpoints), so everything
// below treats the file as hostile: each attribute's dataspace, type class and
// size are checked before H5Aread (which writes as many elements as the file
// declares), only hard links are walked and each object once, storage outside
// the file is refused, and every allocation is sized from what the reader
// expects (the model) rather than from the dims the file declares.

const char* const kNotQhost = "the file was not written by qhost, or is damaged";
const char* const kLinkHint =
    "a qhost checkpoint holds only plain groups and datasets; links and storage outside the file are refused "
    "so a checkpoint cannot pull in other objects or files";

// Caps far above what qhost writes and far below harm.
constexpr size_t kMaxShortString = 4096;         // versions, optimizer type, torch_dtype
constexpr size_t kMaxRngText = size_t{64} << 10;
constexpr size_t kMaxTomlBytes = size_t{16} << 20;   // the resolved configuration
constexpr size_t kMaxRngStateBytes = size_t{1} << 20;  // a CPU generator state is ~5 KB
constexpr size_t kMaxMetricsBytes = size_t{64} << 20;  // metric history text
constexpr size_t kMaxEntries = size_t{1} << 20;      // links below /model and /optimizer together
constexpr int kMaxDepth = 64;                        // group nesting
constexpr int kMaxRank = 16;
constexpr size_t kMaxNameBytes = 4096;
// A lazily shaped (still empty) buffer takes the stored shape; it may not be
// larger than this many elements.
constexpr int64_t kMaxLazyBufferElements = int64_t{1} << 24;

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string describe_space(hid_t space) {
  switch (H5Sget_simple_extent_type(space)) {
    case H5S_SCALAR: return "a scalar";
    case H5S_NULL: return "an empty (null) dataspace";
    case H5S_SIMPLE: {
      const int rank = H5Sget_simple_extent_ndims(space);
      const hssize_t n = H5Sget_simple_extent_npoints(space);
      return "an array of rank " + std::to_string(rank) + " with " + std::to_string(n) + " elements";
    }
    default: return "an unknown dataspace";
  }
}

// Opens attribute `name` and checks that it holds exactly one value.
Handle open_scalar_attr(hid_t obj, const char* name, const std::string& place) {
  const std::string where = place + "/" + name;
  if (!has_attr(obj, name)) fail(where, "missing attribute", kNotQhost);
  Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where, "cannot open the attribute");
  Handle space = check(H5Aget_space(attr.get()), H5Sclose, where, "cannot read the attribute's dataspace");
  if (H5Sget_simple_extent_type(space.get()) != H5S_SCALAR)
    fail(where, "must be a single value, the file has " + describe_space(space.get()), kNotQhost);
  return attr;
}

// Frees a string HDF5 allocated for a variable-length read.
struct H5String {
  char* p = nullptr;
  ~H5String() {
    if (p != nullptr) H5free_memory(p);
  }
};

// Reads one (scalar) string of at most `cap` bytes from an attribute or dataset.
template <class ReadFn>
std::string read_one_string(hid_t type, size_t cap, const std::string& where, ReadFn read) {
  if (H5Tget_class(type) != H5T_STRING) fail(where, "is not a string", kNotQhost);
  if (H5Tis_variable_str(type) > 0) {
    Handle mem = check(H5Tcopy(H5T_C_S1), H5Tclose, where, "cannot create a string type");
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5String value;
    if (read(mem.get(), static_cast<void*>(&value.p)) < 0) fail(where, "cannot read the string", kNotQhost);
    if (value.p == nullptr) return "";
    const size_t n = strnlen(value.p, cap + 1);
    if (n > cap)
      fail(where, "is longer than the " + std::to_string(cap) + " bytes this entry may hold", kNotQhost);
    return std::string(value.p, n);
  }
  const size_t size = H5Tget_size(type);
  if (size == 0 || size > cap)
    fail(where,
         "is a fixed-length string of " + std::to_string(size) + " bytes, this entry may hold " +
             std::to_string(cap),
         kNotQhost);
  std::string buffer(size, '\0');
  if (read(type, static_cast<void*>(buffer.data())) < 0) fail(where, "cannot read the string", kNotQhost);
  return std::string(buffer.c_str(), strnlen(buffer.data(), buffer.size()));
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& place, size_t cap) {
  const std::string where = place + "/" + name;
  Handle attr = open_scalar_attr(obj, name, place);
  Handle type = check(H5Aget_type(attr.get()), H5Tclose, where, "cannot read the attribute's type");
  return read_one_string(type.get(), cap, where,
                         [&](hid_t mem, void* buf) { return H5Aread(attr.get(), mem, buf); });
}

// A scalar attribute of class `cls` whose stored size fits T (HDF5 converts).
template <class T>
T read_scalar_attr(hid_t obj, const char* name, hid_t mem_type, H5T_class_t cls, const std::string& place) {
  const std::string where = place + "/" + name;
  Handle attr = open_scalar_attr(obj, name, place);
  Handle type = check(H5Aget_type(attr.get()), H5Tclose, where, "cannot read the attribute's type");
  const size_t size = H5Tget_size(type.get());
  if (H5Tget_class(type.get()) != cls || size == 0 || size > sizeof(T))
    fail(where,
         std::string("must be ") + (cls == H5T_INTEGER ? "an integer" : "a floating-point number") + " of at most " +
             std::to_string(sizeof(T)) + " bytes (type class " + std::to_string(H5Tget_class(type.get())) + ", " +
             std::to_string(size) + " bytes)",
         kNotQhost);
  T value{};
  if (H5Aread(attr.get(), mem_type, &value) < 0) fail(where, "cannot read the attribute", kNotQhost);
  return value;
}

std::vector<uint8_t> read_bytes_attr(hid_t obj, const char* name, const std::string& place, size_t cap) {
  if (!has_attr(obj, name)) return {};
  const std::string where = place + "/" + name;
  Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where, "cannot open the attribute");
  Handle type = check(H5Aget_type(attr.get()), H5Tclose, where, "cannot read the attribute's type");
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 1)
    fail(where, "must be an array of bytes", kNotQhost);
  Handle space = check(H5Aget_space(attr.get()), H5Sclose, where, "cannot read the attribute's dataspace");
  if (H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE || H5Sget_simple_extent_ndims(space.get()) != 1)
    fail(where, "must be a one-dimensional array, the file has " + describe_space(space.get()), kNotQhost);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || static_cast<size_t>(n) > cap)
    fail(where, "holds " + std::to_string(n) + " bytes, at most " + std::to_string(cap) + " are expected",
         kNotQhost);
  std::vector<uint8_t> out(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_UINT8, out.data()) < 0)
    fail(where, "cannot read the attribute", kNotQhost);
  return out;
}

std::string read_string_dataset(hid_t dset, const std::string& place, size_t cap) {
  Handle space = check(H5Dget_space(dset), H5Sclose, place, "cannot read the dataspace");
  if (H5Sget_simple_extent_type(space.get()) != H5S_SCALAR)
    fail(place, "must be a single string, the file has " + describe_space(space.get()), kNotQhost);
  Handle type = check(H5Dget_type(dset), H5Tclose, place, "cannot read the dataset type");
  return read_one_string(type.get(), cap, place, [&](hid_t mem, void* buf) {
    return H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  });
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

// One dataset below /model or /optimizer: described and checked, not read yet.
struct Entry {
  std::string path;  // relative to /model or /optimizer, slash separated
  Handle dset;
  std::vector<int64_t> sizes;
  int64_t numel = 0;
  torch::ScalarType dtype = torch::kFloat32;  // what reading produces
  bool filtered = false;                      // compressed: stored bytes may be fewer than numel * size
  int64_t bytes() const { return numel * static_cast<int64_t>(c10::elementSize(dtype)); }
};

// Type, shape and storage of a dataset, checked without reading any data.
Entry describe_dataset(Handle dset, const std::string& rel, const std::string& place) {
  Entry e;
  e.path = rel;
  Handle type = check(H5Dget_type(dset.get()), H5Tclose, place, "cannot read the dataset type");
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && (size == 4 || size == 8)) {
    e.dtype = size == 8 ? torch::kFloat64 : torch::kFloat32;
  } else if (cls == H5T_INTEGER && (size == 8 || size == 4 || size == 1)) {
    const bool is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
    e.dtype = size == 8 ? torch::kInt64 : size == 4 ? torch::kInt32 : is_signed ? torch::kInt8 : torch::kUInt8;
  } else {
    fail(place, "unsupported dataset type (class " + std::to_string(static_cast<int>(cls)) + ", " +
                    std::to_string(size) + " bytes)",
         kNotQhost);
  }
  Handle space = check(H5Dget_space(dset.get()), H5Sclose, place, "cannot read the dataspace");
  const H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  if (space_class != H5S_SCALAR && space_class != H5S_SIMPLE)
    fail(place, "has " + describe_space(space.get()) + ", not a tensor", kNotQhost);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > kMaxRank) fail(place, "has " + std::to_string(rank) + " dimensions", kNotQhost);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  // Element count without overflow: anything near 2^62 bytes is impossible anyway.
  const uint64_t limit = (uint64_t{1} << 62) / c10::elementSize(e.dtype);
  uint64_t numel = 1;
  for (hsize_t d : dims) {
    if (d != 0 && numel > limit / d) fail(place, "declares an impossibly large shape", kNotQhost);
    numel *= d;
    e.sizes.push_back(static_cast<int64_t>(d));
  }
  e.numel = static_cast<int64_t>(numel);
  Handle dcpl = check(H5Dget_create_plist(dset.get()), H5Pclose, place, "cannot read the dataset's properties");
  if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL)
    fail(place, "is a virtual dataset (its data is mapped from other datasets or files)", kLinkHint);
  const int externals = H5Pget_external_count(dcpl.get());
  if (externals != 0) fail(place, "stores its data in external raw files outside the checkpoint", kLinkHint);
  const int filters = H5Pget_nfilters(dcpl.get());
  if (filters < 0) fail(place, "cannot read the dataset's filters", kNotQhost);
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0;
    size_t n_values = 0;
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &n_values, nullptr, 0,
                                           nullptr, &config);
    // Only the filters built into libhdf5 itself: a filter plugin would be a
    // library loaded because the file asks for it.
    if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32)
      fail(place, "uses HDF5 filter " + std::to_string(id) + ", which qhost does not read",
           "store tensors uncompressed (or with gzip/shuffle)");
  }
  e.filtered = filters > 0;
  if (has_attr(dset.get(), "torch_dtype")) {
    const std::string t = read_string_attr(dset.get(), "torch_dtype", place, kMaxShortString);
    if (t == "bool") {
      if (e.dtype != torch::kUInt8) fail(place + "/torch_dtype", "is 'bool' on a dataset that is not uint8", kNotQhost);
      e.dtype = torch::kBool;
    }
  }
  e.dset = std::move(dset);
  return e;
}

// Reads the data of a checked entry. The caller has bounded e.bytes().
torch::Tensor read_entry(const Entry& e, const std::string& place) {
  if (e.numel > 0) {
    // An allocated-late dataset that was never written reads as fill values:
    // a "checkpoint" of zeros. qhost always writes every element.
    const hsize_t stored = H5Dget_storage_size(e.dset.get());
    if (stored == 0)
      fail(place, "declares shape " + shape_str(e.sizes) + " but holds no data (never written)", kNotQhost);
    if (!e.filtered && static_cast<int64_t>(stored) < e.bytes())
      fail(place,
           "holds " + std::to_string(stored) + " bytes, its shape " + shape_str(e.sizes) + " needs " +
               std::to_string(e.bytes()) + " (partly written or truncated)",
           kNotQhost);
  }
  const torch::ScalarType read_as = e.dtype == torch::kBool ? torch::kUInt8 : e.dtype;
  torch::Tensor t = torch::empty(e.sizes, torch::TensorOptions().dtype(read_as));
  if (e.numel > 0 && H5Dread(e.dset.get(), mem_type_of(read_as), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    fail(place, "cannot read the data (file damaged?)");
  if (e.dtype == torch::kBool) t = t.to(torch::kBool);
  return t;
}

// A key identifying an HDF5 object within its file, to see it twice.
std::string object_key(hid_t obj, const std::string& place) {
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  if (H5Oget_info3(obj, &info, H5O_INFO_BASIC) < 0) fail(place, "cannot read the object header", kNotQhost);
  return std::string(reinterpret_cast<const char*>(&info.token), sizeof(info.token));
#else
  H5O_info_t info;
  if (H5Oget_info2(obj, &info, H5O_INFO_BASIC) < 0) fail(place, "cannot read the object header", kNotQhost);
  return std::to_string(info.addr);
#endif
}

struct Walk {
  std::set<std::string> visited;  // objects seen (groups and datasets), across /model and /optimizer
  size_t links = 0;
};

// Describes every dataset below `group` as an Entry, depth first in name
// order. Only hard links are followed, each object once (a group linking to
// its parent would otherwise recurse forever). Uses only version-stable calls
// (no H5Lvisit/H5Ovisit, whose signatures changed between HDF5 1.10 and 1.12).
void collect(hid_t group, const std::string& prefix, const std::string& place, Walk& walk, int depth,
             std::vector<Entry>& out) {
  const std::string here = prefix.empty() ? place : place + "/" + prefix;
  if (depth > kMaxDepth) fail(here, "groups nested deeper than " + std::to_string(kMaxDepth), kNotQhost);
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) fail(here, "cannot list the group", kNotQhost);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    if (++walk.links > kMaxEntries)
      fail(here, "holds more than " + std::to_string(kMaxEntries) + " entries", kNotQhost);
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail(here, "cannot read a link name", kNotQhost);
    if (static_cast<size_t>(len) > kMaxNameBytes) fail(here, "has a link name of " + std::to_string(len) + " bytes", kNotQhost);
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    const std::string where = place + "/" + path;
    H5L_info_t link;
    if (H5Lget_info_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, &link, H5P_DEFAULT) < 0)
      fail(where, "cannot read the link", kNotQhost);
    if (link.type != H5L_TYPE_HARD)
      fail(where,
           link.type == H5L_TYPE_SOFT       ? "is a soft link"
           : link.type == H5L_TYPE_EXTERNAL ? "is an external link (to another file)"
                                            : "is a user-defined link",
           kLinkHint);
    Handle obj(H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) fail(where, "cannot open entry", kNotQhost);
    if (!walk.visited.insert(object_key(obj.get(), where)).second)
      fail(where, "links to an object already seen (a link cycle or a second name for one object)", kLinkHint);
    const H5I_type_t kind = H5Iget_type(obj.get());
    if (kind == H5I_GROUP) collect(obj.get(), path, place, walk, depth + 1, out);
    else if (kind == H5I_DATASET) out.push_back(describe_dataset(std::move(obj), path, where));
  }
}

// Top-level entries are opened by name, which would follow a soft or external link.
void require_hard_link(hid_t parent, const char* name, const std::string& place) {
  H5L_info_t link;
  if (H5Lget_info(parent, name, &link, H5P_DEFAULT) < 0) fail(place, "cannot read the link", kNotQhost);
  if (link.type != H5L_TYPE_HARD) fail(place, "is a link, not a group or dataset of this file", kLinkHint);
}

// Describes every dataset below the group /<name>.
std::vector<Entry> collect_group(hid_t file, const char* name, const std::string& place, Walk& walk) {
  std::vector<Entry> out;
  require_hard_link(file, name, place);
  Handle group = check(H5Gopen2(file, name, H5P_DEFAULT), H5Gclose, place, "cannot open the group");
  walk.visited.insert(object_key(group.get(), place));
  collect(group.get(), "", place, walk, 0, out);
  return out;
}

// No HDF5 filter plugins while a checkpoint is read: a file must not make this
// process load a library. The previous state is restored afterwards (a dataset
// reader may rely on filter plugins for its own files).
class NoFilterPlugins {
 public:
  NoFilterPlugins() {
    saved_ok_ = H5PLget_loading_state(&saved_) >= 0;
    H5PLset_loading_state(0);
  }
  ~NoFilterPlugins() {
    if (saved_ok_) H5PLset_loading_state(saved_);
  }
  NoFilterPlugins(const NoFilterPlugins&) = delete;
  NoFilterPlugins& operator=(const NoFilterPlugins&) = delete;

 private:
  unsigned int saved_ = 0;
  bool saved_ok_ = false;
};

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
  require_hard_link(file, "meta", place);
  Handle meta = check(H5Gopen2(file, "meta", H5P_DEFAULT), H5Gclose, place, "cannot open the group");
  CheckpointMeta m;
  m.format_version = read_scalar_attr<int64_t>(meta.get(), "format_version", H5T_NATIVE_INT64, H5T_INTEGER, place);
  if (m.format_version != kCheckpointFormatVersion) {
    std::string writer = "?";
    try {
      writer = read_string_attr(meta.get(), "qtool_version", place, kMaxShortString);
    } catch (const qsdk::Error&) {
    }
    fail(place + "/format_version",
         "format version " + std::to_string(m.format_version) + ", this qhost reads version " +
             std::to_string(kCheckpointFormatVersion),
         "use the qhost version that wrote it (" + writer + ")");
  }
  m.qtool_version = read_string_attr(meta.get(), "qtool_version", place, kMaxShortString);
  m.sdk_version = read_string_attr(meta.get(), "sdk_version", place, kMaxShortString);
  m.torch_version = read_string_attr(meta.get(), "torch_version", place, kMaxShortString);
  m.epoch = read_scalar_attr<int64_t>(meta.get(), "epoch", H5T_NATIVE_INT64, H5T_INTEGER, place);
  m.step = read_scalar_attr<int64_t>(meta.get(), "step", H5T_NATIVE_INT64, H5T_INTEGER, place);
  m.best_top1 = read_scalar_attr<double>(meta.get(), "best_top1", H5T_NATIVE_DOUBLE, H5T_FLOAT, place);
  if (m.epoch < 0 || m.step < 0) fail(place, "has a negative epoch or step", kNotQhost);
  m.resolved_toml = read_string_attr(meta.get(), "resolved_toml", place, kMaxTomlBytes);
  m.optimizer_type = read_string_attr(meta.get(), "optimizer_type", place, kMaxShortString);
  m.rng_text = read_string_attr(meta.get(), "rng_text", place, kMaxRngText);
  m.torch_rng_state = read_bytes_attr(meta.get(), "torch_rng_state", place, kMaxRngStateBytes);
  // Written only by integer models (docs/integer-model.md); a checkpoint has neither.
  if (has_attr(meta.get(), "content")) {
    m.content = read_string_attr(meta.get(), "content", place, kMaxShortString);
    m.content_version = read_scalar_attr<int64_t>(meta.get(), "content_version", H5T_NATIVE_INT64, H5T_INTEGER, place);
  }
  return m;
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

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  NoFilterPlugins no_plugins;
  Handle file = open_for_reading(path);
  return read_meta(file.get(), path);
}

namespace {

// What the model holds under one dotted name.
struct Expected {
  std::vector<int64_t> sizes;
  torch::ScalarType dtype;
  bool lazy = false;  // an empty buffer that takes the stored shape
};

std::map<std::string, Expected> expectations(const torch::nn::Module& module) {
  std::map<std::string, Expected> out;
  for (const auto& item : module.named_parameters(true))
    out[item.key()] = {item.value().sizes().vec(), item.value().scalar_type(), false};
  for (const auto& item : module.named_buffers(true))
    if (item.value().defined())
      out[item.key()] = {item.value().sizes().vec(), item.value().scalar_type(), item.value().numel() == 0};
  return out;
}

// Floating-point entries load into floating-point tensors, integer ones
// (and bool) into integer ones; widths convert.
bool dtype_fits(torch::ScalarType target, torch::ScalarType stored) {
  return c10::isFloatingType(target) == c10::isFloatingType(stored);
}

// Whether a stored entry can be read for `want` without reading more than the model holds.
std::string misfit(const Entry& e, const Expected& want, bool by_numel) {
  if (want.lazy) {
    if (e.numel > kMaxLazyBufferElements)
      return "checkpoint has " + shape_str(e.sizes) + ", more than a buffer may hold";
  } else if (by_numel ? e.numel != c10::multiply_integers(want.sizes) : e.sizes != want.sizes) {
    return "model has " + shape_str(want.sizes) + ", checkpoint has " + shape_str(e.sizes);
  }
  if (!dtype_fits(want.dtype, e.dtype))
    return std::string("model has dtype ") + c10::toString(want.dtype) + ", checkpoint has " + c10::toString(e.dtype);
  return "";
}

// One error for every problem found, listing a few of each kind.
[[noreturn]] void fail_misfit(const std::string& place, const std::string& what,
                              const std::vector<std::string>& problems, const std::vector<std::string>& unknown) {
  constexpr size_t kShow = 8;
  const size_t total = problems.size() + unknown.size();
  std::string msg = what + " (" + std::to_string(total) + " problem" + (total > 1 ? "s" : "") + "):";
  for (size_t i = 0; i < problems.size() && i < kShow; ++i) msg += "\n  " + problems[i];
  if (problems.size() > kShow) msg += "\n  ... and " + std::to_string(problems.size() - kShow) + " more";
  if (!unknown.empty()) {
    msg += "\n  " + std::to_string(unknown.size()) + " unused entr" + (unknown.size() > 1 ? "ies" : "y") +
           " (not in the model):";
    for (size_t i = 0; i < unknown.size() && i < kShow; ++i) msg += (i ? ", '" : " '") + unknown[i] + "'";
    if (unknown.size() > kShow) msg += ", ...";
  }
  fail(place, msg,
       "the checkpoint was written for another model or configuration; use [train] init_from for a lenient "
       "initialisation");
}

}  // namespace

CheckpointData read_checkpoint(const std::string& path, const CheckpointReadOptions& options) {
  NoFilterPlugins no_plugins;  // declared first: restored after every handle is closed
  Handle file = open_for_reading(path);
  CheckpointData data;
  data.meta = read_meta(file.get(), path);
  if (!data.meta.content.empty() && !options.read_integer)
    fail(path + ":/meta/content",
         "is a qtool " + data.meta.content + ", not a training checkpoint (it holds no float weights to train from)",
         "evaluate it with qhost eval; resume, init_from and teachers need the checkpoint it was exported from");
  if (options.read_integer && data.meta.content != "integer-model")
    fail(path + ":/meta/content", "missing: the file is a training checkpoint, not a qtool integer model");
  if (H5Lexists(file.get(), "model", H5P_DEFAULT) <= 0) fail(path + ":/model", "missing", "the file is damaged");
  // Describe everything first (no tensor data yet), check it against the model, then read.
  Walk walk;
  std::vector<Entry> model = collect_group(file.get(), "model", path + ":/model", walk);
  std::vector<Entry> opt;
  if (options.read_optimizer && H5Lexists(file.get(), "optimizer", H5P_DEFAULT) > 0)
    opt = collect_group(file.get(), "optimizer", path + ":/optimizer", walk);
  for (const auto& e : opt)
    if (e.path.find('/') == std::string::npos)
      fail(path + ":/optimizer/" + e.path, "optimizer entry without a parameter name", kNotQhost);

  // An integer model's /integer: every entry vetted by the caller before any read.
  std::vector<Entry> integer;
  if (options.read_integer) {
    if (!options.check_integer) fail(path, "read_integer without check_integer (a qhost bug)");
    if (H5Lexists(file.get(), "integer", H5P_DEFAULT) <= 0)
      fail(path + ":/integer", "missing", "the file is damaged");
    integer = collect_group(file.get(), "integer", path + ":/integer", walk);
    for (const auto& e : integer) options.check_integer(e.path, e.sizes, e.dtype);
  }

  std::vector<bool> read_it(model.size(), true);
  if (options.model != nullptr) {
    auto want = expectations(*options.model);
    for (const auto& name : options.absent) want.erase(name);
    std::vector<std::string> problems, unknown;
    if (options.lenient) {
      // The DataParallel `module.` prefix is dropped as init_module_from() does.
      const bool strip = !model.empty() && model.front().path.rfind("module/", 0) == 0;
      for (size_t i = 0; i < model.size(); ++i) {
        std::string name = slashes_to_dots(model[i].path);
        if (strip && name.rfind("module.", 0) == 0) name = name.substr(7);
        auto it = want.find(name);
        read_it[i] = it != want.end() && misfit(model[i], it->second, /*by_numel=*/true).empty();
      }
    } else {
      std::set<std::string> seen;
      for (const auto& e : model) {
        const std::string name = slashes_to_dots(e.path);
        seen.insert(name);
        auto it = want.find(name);
        if (it == want.end()) {
          unknown.push_back(name);
          continue;
        }
        const std::string why = misfit(e, it->second, false);
        if (!why.empty()) problems.push_back("'" + name + "': " + why);
      }
      for (const auto& [name, w] : want)
        if (seen.count(name) == 0) problems.push_back("missing entry '" + name + "' (shape " + shape_str(w.sizes) + ")");
      if (!problems.empty() || !unknown.empty())
        fail_misfit(path + ":/model", "does not fit the model", problems, unknown);
    }
    // Optimizer state: `<parameter>/<state>`, each the parameter's shape ("step": a scalar).
    std::map<std::string, std::vector<int64_t>> params;
    for (const auto& item : options.model->named_parameters(true)) params[item.key()] = item.value().sizes().vec();
    for (const auto& e : opt) {
      const auto slash = e.path.rfind('/');
      const std::string name = slashes_to_dots(e.path.substr(0, slash)), state = e.path.substr(slash + 1);
      auto it = params.find(name);
      if (it == params.end()) {
        unknown.push_back(name + "/" + state);
      } else if (state == "step") {
        if (e.numel != 1) problems.push_back("'" + name + "/step' has shape " + shape_str(e.sizes) + ", not a scalar");
      } else if (state == "momentum_buffer" || state == "exp_avg" || state == "exp_avg_sq") {
        if (e.sizes != it->second || !c10::isFloatingType(e.dtype))
          problems.push_back("'" + name + "/" + state + "' has shape " + shape_str(e.sizes) + " (" +
                             c10::toString(e.dtype) + "), parameter has " + shape_str(it->second));
      } else {
        problems.push_back("'" + name + "/" + state + "': unknown optimizer state");
      }
    }
    if (!problems.empty() || !unknown.empty())
      fail_misfit(path + ":/optimizer", "optimizer state does not fit the model", problems, unknown);
  } else {
    // No model to compare with: cap the total instead.
    int64_t total = 0;
    for (const auto* list : {&model, &opt})
      for (const auto& e : *list) {
        total += e.bytes();
        if (total > options.max_bytes_without_model)
          fail(path, "holds more than " + std::to_string(options.max_bytes_without_model >> 20) +
                         " MiB of tensors (at " + e.path + ")",
               kNotQhost);
      }
  }

  for (size_t i = 0; i < model.size(); ++i) {
    const Entry& e = model[i];
    const std::string where = path + ":/model/" + e.path;
    torch::Tensor t;
    if (read_it[i]) {
      t = read_entry(e, where);
      if (!options.allow_nonfinite && c10::isFloatingType(t.scalar_type()) && !torch::isfinite(t).all().item<bool>())
        fail(where, "holds NaN or infinite values",
             "the run diverged before this checkpoint was written; pass --allow-nonfinite to load it anyway "
             "(for debugging)");
    } else {
      t = torch::empty(e.sizes, torch::TensorOptions().dtype(e.dtype).device(torch::kMeta));  // shape only
    }
    data.model.emplace_back(slashes_to_dots(e.path), std::move(t));
  }
  for (const auto& e : integer) data.integer.emplace_back(e.path, read_entry(e, path + ":/integer/" + e.path));
  for (const auto& e : opt) {
    const auto slash = e.path.rfind('/');
    data.optimizer.emplace_back(slashes_to_dots(e.path.substr(0, slash)) + e.path.substr(slash),
                                read_entry(e, path + ":/optimizer/" + e.path));
  }
  if (H5Lexists(file.get(), "metrics", H5P_DEFAULT) > 0) require_hard_link(file.get(), "metrics", path + ":/metrics");
  if (H5Lexists(file.get(), "metrics", H5P_DEFAULT) > 0 &&
      H5Lexists(file.get(), "metrics/history_jsonl", H5P_DEFAULT) > 0) {
    const std::string where = path + ":/metrics/history_jsonl";
    require_hard_link(file.get(), "metrics/history_jsonl", where);
    Handle dset = check(H5Dopen2(file.get(), "metrics/history_jsonl", H5P_DEFAULT), H5Dclose, where, "cannot open");
    Handle dcpl = check(H5Dget_create_plist(dset.get()), H5Pclose, where, "cannot read the dataset's properties");
    if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL || H5Pget_external_count(dcpl.get()) != 0)
      fail(where, "stores its data outside the checkpoint", kLinkHint);
    data.metrics_jsonl = read_string_dataset(dset.get(), where, kMaxMetricsBytes);
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
