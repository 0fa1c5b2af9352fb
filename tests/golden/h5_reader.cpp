// HDF5 C API wrapper for the golden test.
#include "h5_reader.hpp"

#include <hdf5.h>

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace qtool_golden {
namespace {
[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("golden HDF5: " + what); }
}  // namespace

H5Group H5Group::open_file(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) fail("cannot open " + path);
  return H5Group(f, path + ":", true);
}

H5Group::H5Group(H5Group&& o) noexcept : id_(o.id_), path_(std::move(o.path_)), file_(o.file_) { o.id_ = -1; }

H5Group::~H5Group() {
  if (id_ < 0) return;
  if (file_) {
    H5Fclose(id_);
  } else {
    H5Gclose(id_);
  }
}

std::vector<std::string> H5Group::children() const {
  H5G_info_t info;
  if (H5Gget_info(id_, &info) < 0) fail("cannot list " + path_);
  std::vector<std::string> out;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<size_t>(n) + 1,
                       H5P_DEFAULT);
    out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool H5Group::has(const std::string& name) const { return H5Lexists(id_, name.c_str(), H5P_DEFAULT) > 0; }

bool H5Group::has_path(const std::string& path) const {
  size_t pos = 0;
  while (true) {
    size_t next = path.find('/', pos);
    std::string prefix = path.substr(0, next);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

H5Group H5Group::group(const std::string& path) const {
  hid_t g = H5Gopen2(id_, path.c_str(), H5P_DEFAULT);
  if (g < 0) fail("no group " + path_ + "/" + path);
  return H5Group(g, path_ + "/" + path, false);
}

bool H5Group::is_dataset(const std::string& path) const {
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  if (H5Oget_info_by_name3(id_, path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
#else
  if (H5Oget_info_by_name(id_, path.c_str(), &info, H5P_DEFAULT) < 0) return false;
#endif
  return info.type == H5O_TYPE_DATASET;
}

torch::Tensor H5Group::tensor(const std::string& path) const {
  hid_t d = H5Dopen2(id_, path.c_str(), H5P_DEFAULT);
  if (d < 0) fail("no dataset " + path_ + "/" + path);
  hid_t space = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  H5Sclose(space);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  hid_t type = H5Dget_type(d);
  const bool is_int = H5Tget_class(type) == H5T_INTEGER;
  H5Tclose(type);
  torch::Tensor t = torch::empty(shape, is_int ? torch::kInt32 : torch::kFloat32);
  herr_t st = H5Dread(d, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr());
  H5Dclose(d);
  if (st < 0) fail("cannot read " + path_ + "/" + path);
  return t;
}

bool H5Group::has_attr(const std::string& name) const { return H5Aexists(id_, name.c_str()) > 0; }

std::string H5Group::str(const std::string& name) const {
  hid_t a = H5Aopen(id_, name.c_str(), H5P_DEFAULT);
  if (a < 0) fail("no attribute " + path_ + "@" + name);
  hid_t ft = H5Aget_type(a);
  std::string out;
  if (H5Tis_variable_str(ft) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    char* p = nullptr;
    H5Aread(a, mt, &p);
    if (p != nullptr) out = p;
    H5free_memory(p);
    H5Tclose(mt);
  } else {
    size_t size = H5Tget_size(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, size);
    H5Tset_strpad(mt, H5T_STR_NULLPAD);
    std::string buf(size, '\0');
    H5Aread(a, mt, buf.data());
    H5Tclose(mt);
    out = buf.substr(0, buf.find('\0'));
  }
  H5Tclose(ft);
  H5Aclose(a);
  return out;
}

int64_t H5Group::int_attr(const std::string& name) const {
  hid_t a = H5Aopen(id_, name.c_str(), H5P_DEFAULT);
  if (a < 0) fail("no attribute " + path_ + "@" + name);
  int64_t v = 0;
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  return v;
}

double H5Group::dbl(const std::string& name) const {
  hid_t a = H5Aopen(id_, name.c_str(), H5P_DEFAULT);
  if (a < 0) fail("no attribute " + path_ + "@" + name);
  double v = 0;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  return v;
}

std::vector<std::string> H5Group::attr_names() const {
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  H5Oget_info3(id_, &info, H5O_INFO_NUM_ATTRS);
#else
  H5Oget_info(id_, &info);
#endif
  std::vector<std::string> out;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    ssize_t n = H5Aget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(n), '\0');
    H5Aget_name_by_idx(id_, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<size_t>(n) + 1, H5P_DEFAULT);
    out.push_back(name);
  }
  return out;
}

}  // namespace qtool_golden
