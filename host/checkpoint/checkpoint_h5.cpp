// checkpoint_h5.cpp - see checkpoint_h5.hpp. HDF5 C API rather than the C++
// one: it is the stable, always-packaged interface, and every handle is closed
// by Handle.
#include "checkpoint_h5.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

namespace qhost::h5 {
namespace fs = std::filesystem;

void fail(const std::string& place, const std::string& message, const std::string& hint) {
  throw qsdk::Error(qsdk::ErrorCategory::checkpoint, place, message, hint);
}

void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle check(hid_t id, Handle::Closer closer, const std::string& place, const std::string& what) {
  if (id < 0) fail(place, what);
  return Handle(id, closer);
}

size_t element_size(DType t) {
  switch (t) {
    case DType::float64:
    case DType::int64: return 8;
    case DType::float32:
    case DType::int32: return 4;
    case DType::int8:
    case DType::uint8:
    case DType::boolean: return 1;
  }
  return 1;
}
bool is_floating(DType t) { return t == DType::float32 || t == DType::float64; }
const char* dtype_name(DType t) {
  switch (t) {
    case DType::float32: return "Float";
    case DType::float64: return "Double";
    case DType::int32: return "Int";
    case DType::int64: return "Long";
    case DType::int8: return "Char";
    case DType::uint8: return "Byte";
    case DType::boolean: return "Bool";
  }
  return "?";
}
hid_t mem_type_of(DType t) {
  switch (t) {
    case DType::float32: return H5T_NATIVE_FLOAT;
    case DType::float64: return H5T_NATIVE_DOUBLE;
    case DType::int32: return H5T_NATIVE_INT32;
    case DType::int64: return H5T_NATIVE_INT64;
    case DType::int8: return H5T_NATIVE_INT8;
    case DType::uint8:
    case DType::boolean: return H5T_NATIVE_UINT8;
  }
  return -1;
}

std::string shape_str(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

NoFilterPlugins::NoFilterPlugins() {
  saved_ok_ = H5PLget_loading_state(&saved_) >= 0;
  H5PLset_loading_state(0);
}
NoFilterPlugins::~NoFilterPlugins() {
  if (saved_ok_) H5PLset_loading_state(saved_);
}

namespace {

std::string slashes_to_dots(std::string s) {
  for (char& c : s)
    if (c == '/') c = '.';
  return s;
}

// Element count of a model tensor (its sizes are the model's own, not the file's).
int64_t product(const std::vector<int64_t>& sizes) {
  int64_t n = 1;
  for (int64_t d : sizes) n *= d;
  return n;
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
// Chunks of a small tensor may be larger than its data, up to this.
constexpr uint64_t kMaxSmallChunkBytes = uint64_t{1} << 20;

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

// Type, shape and storage of a dataset, checked without reading any data.
Entry describe_dataset(Handle dset, const std::string& rel, const std::string& place) {
  Entry e;
  e.path = rel;
  Handle type = check(H5Dget_type(dset.get()), H5Tclose, place, "cannot read the dataset type");
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && (size == 4 || size == 8)) {
    e.dtype = size == 8 ? DType::float64 : DType::float32;
  } else if (cls == H5T_INTEGER && (size == 8 || size == 4 || size == 1)) {
    const bool is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
    e.dtype = size == 8 ? DType::int64 : size == 4 ? DType::int32 : is_signed ? DType::int8 : DType::uint8;
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
  const uint64_t limit = (uint64_t{1} << 62) / element_size(e.dtype);
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
  // HDF5 reads a filtered chunk whole, into a buffer of the chunk's declared
  // size whatever the dataset's shape: a 4-element dataset with 1 GiB chunks
  // (a 1 MB file) costs 1 GiB to read. No chunk may be larger than the data
  // itself (or kMaxSmallChunkBytes, for the few bytes of a small tensor).
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(static_cast<size_t>(std::max(rank, 1)));
    if (rank == 0 || H5Pget_chunk(dcpl.get(), rank, chunk.data()) != rank)
      fail(place, "has a chunk layout that does not match its shape", kNotQhost);
    const uint64_t cap = std::max<uint64_t>(static_cast<uint64_t>(e.bytes()), kMaxSmallChunkBytes);
    uint64_t chunk_bytes = element_size(e.dtype);
    for (hsize_t d : chunk) {
      if (d != 0 && chunk_bytes > cap / d) {
        chunk_bytes = cap + 1;  // larger than allowed; the exact size does not matter
        break;
      }
      chunk_bytes *= d;
    }
    if (chunk_bytes > cap)
      fail(place,
           "is stored in chunks larger than its " + std::to_string(e.bytes()) +
               " bytes of data (HDF5 reads each chunk whole)",
           kNotQhost);
  }
  if (has_attr(dset.get(), "torch_dtype")) {
    const std::string t = read_string_attr(dset.get(), "torch_dtype", place, kMaxShortString);
    if (t == "bool") {
      if (e.dtype != DType::uint8) fail(place + "/torch_dtype", "is 'bool' on a dataset that is not uint8", kNotQhost);
      e.dtype = DType::boolean;
    }
  }
  e.dset = std::move(dset);
  return e;
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

// Whether a stored entry can be read for `want` without reading more than the model holds.
std::string misfit(const Entry& e, const ExpectedTensor& want, bool by_numel) {
  if (want.lazy) {
    if (e.numel > kMaxLazyBufferElements)
      return "checkpoint has " + shape_str(e.sizes) + ", more than a buffer may hold";
  } else if (by_numel ? e.numel != product(want.sizes) : e.sizes != want.sizes) {
    return "model has " + shape_str(want.sizes) + ", checkpoint has " + shape_str(e.sizes);
  }
  // Floating-point entries load into floating-point tensors, integer ones
  // (and bool) into integer ones; widths convert.
  if (want.floating != is_floating(e.dtype))
    return "model has dtype " + want.dtype_name + ", checkpoint has " + dtype_name(e.dtype);
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

CheckpointReader::CheckpointReader(const std::string& path, const ReadPlanOptions& options)
    : path_(path), file_(open_for_reading(path)) {
  meta_ = read_meta(file_.get(), path_);
  if (!meta_.content.empty() && !options.read_integer)
    fail(path_ + ":/meta/content",
         "is a qtool " + meta_.content + ", not a training checkpoint (it holds no float weights to train from)",
         "evaluate it with qhost eval; resume, init_from and teachers need the checkpoint it was exported from");
  if (options.read_integer && meta_.content != "integer-model")
    fail(path_ + ":/meta/content", "missing: the file is a training checkpoint, not a qtool integer model");
  if (H5Lexists(file_.get(), "model", H5P_DEFAULT) <= 0) fail(path_ + ":/model", "missing", "the file is damaged");
  // Describe everything first (no tensor data yet), check it against the model, then read.
  Walk walk;
  model_ = collect_group(file_.get(), "model", path_ + ":/model", walk);
  if (options.read_optimizer && H5Lexists(file_.get(), "optimizer", H5P_DEFAULT) > 0)
    opt_ = collect_group(file_.get(), "optimizer", path_ + ":/optimizer", walk);
  for (const auto& e : opt_)
    if (e.path.find('/') == std::string::npos)
      fail(path_ + ":/optimizer/" + e.path, "optimizer entry without a parameter name", kNotQhost);
  // An integer model's /integer: every entry vetted by the caller before any read.
  if (options.read_integer) {
    if (!options.check_integer) fail(path_, "read_integer without check_integer (a qhost bug)");
    if (H5Lexists(file_.get(), "integer", H5P_DEFAULT) <= 0) fail(path_ + ":/integer", "missing", "the file is damaged");
    integer_ = collect_group(file_.get(), "integer", path_ + ":/integer", walk);
    for (const auto& e : integer_) options.check_integer(e.path, e.sizes, e.dtype);
  }

  read_it_.assign(model_.size(), true);
  if (options.model != nullptr) {
    const auto& want = options.model->tensors;
    std::vector<std::string> problems, unknown;
    if (options.lenient) {
      // The DataParallel `module.` prefix is dropped as init_module_from() does.
      const bool strip = !model_.empty() && model_.front().path.rfind("module/", 0) == 0;
      for (size_t i = 0; i < model_.size(); ++i) {
        std::string name = slashes_to_dots(model_[i].path);
        if (strip && name.rfind("module.", 0) == 0) name = name.substr(7);
        auto it = want.find(name);
        read_it_[i] = it != want.end() && misfit(model_[i], it->second, /*by_numel=*/true).empty();
      }
    } else {
      std::set<std::string> seen;
      for (const auto& e : model_) {
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
        fail_misfit(path_ + ":/model", "does not fit the model", problems, unknown);
    }
    // Optimizer state: `<parameter>/<state>`, each the parameter's shape ("step": a scalar).
    const auto& params = options.model->parameters;
    for (const auto& e : opt_) {
      const auto slash = e.path.rfind('/');
      const std::string name = slashes_to_dots(e.path.substr(0, slash)), state = e.path.substr(slash + 1);
      auto it = params.find(name);
      if (it == params.end()) {
        unknown.push_back(name + "/" + state);
      } else if (state == "step") {
        if (e.numel != 1) problems.push_back("'" + name + "/step' has shape " + shape_str(e.sizes) + ", not a scalar");
      } else if (state == "momentum_buffer" || state == "exp_avg" || state == "exp_avg_sq") {
        if (e.sizes != it->second || !is_floating(e.dtype))
          problems.push_back("'" + name + "/" + state + "' has shape " + shape_str(e.sizes) + " (" +
                             dtype_name(e.dtype) + "), parameter has " + shape_str(it->second));
      } else {
        problems.push_back("'" + name + "/" + state + "': unknown optimizer state");
      }
    }
    if (!problems.empty() || !unknown.empty())
      fail_misfit(path_ + ":/optimizer", "optimizer state does not fit the model", problems, unknown);
  } else {
    // No model to compare with: cap the total instead.
    int64_t total = 0;
    for (const auto* list : {&model_, &opt_})
      for (const auto& e : *list) {
        total += e.bytes();
        if (total > options.max_bytes_without_model)
          fail(path_, "holds more than " + std::to_string(options.max_bytes_without_model >> 20) +
                         " MiB of tensors (at " + e.path + ")",
               kNotQhost);
      }
  }

}

void CheckpointReader::check_stored(const Entry& e, const std::string& place) const {
  if (e.numel == 0) return;
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

void CheckpointReader::read_into(const Entry& e, void* dst, size_t dst_bytes, const std::string& place) const {
  check_stored(e, place);
  // H5Dread writes as many elements as the dataspace holds: the buffer must be exactly that.
  if (e.bytes() < 0 || dst_bytes != static_cast<size_t>(e.bytes()))
    fail(place, "internal error: a buffer of " + std::to_string(dst_bytes) + " bytes for " +
                    std::to_string(e.bytes()) + " bytes of data");
  if (e.numel > 0 && H5Dread(e.dset.get(), mem_type_of(e.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
    fail(place, "cannot read the data (file damaged?)");
}

std::string CheckpointReader::read_metrics() const {
  if (H5Lexists(file_.get(), "metrics", H5P_DEFAULT) > 0) require_hard_link(file_.get(), "metrics", path_ + ":/metrics");
  if (H5Lexists(file_.get(), "metrics", H5P_DEFAULT) > 0 &&
      H5Lexists(file_.get(), "metrics/history_jsonl", H5P_DEFAULT) > 0) {
    const std::string where = path_ + ":/metrics/history_jsonl";
    require_hard_link(file_.get(), "metrics/history_jsonl", where);
    Handle dset = check(H5Dopen2(file_.get(), "metrics/history_jsonl", H5P_DEFAULT), H5Dclose, where, "cannot open");
    Handle dcpl = check(H5Dget_create_plist(dset.get()), H5Pclose, where, "cannot read the dataset's properties");
    if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL || H5Pget_external_count(dcpl.get()) != 0)
      fail(where, "stores its data outside the checkpoint", kLinkHint);
    return read_string_dataset(dset.get(), where, kMaxMetricsBytes);
  }
  return "";
}

}  // namespace qhost::h5

namespace qhost {

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::NoFilterPlugins no_plugins;
  h5::Handle file = h5::open_for_reading(path);
  return h5::read_meta(file.get(), path);
}

}  // namespace qhost
