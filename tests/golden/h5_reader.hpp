// Minimal read-only view of the golden HDF5 files (HDF5 C API).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qtool_golden {

/// An open HDF5 group (or file root); closes its handle on destruction.
class H5Group {
 public:
  /// Opens `path` read-only (the root group).
  static H5Group open_file(const std::string& path);
  H5Group(H5Group&& other) noexcept;
  H5Group& operator=(H5Group&&) = delete;
  H5Group(const H5Group&) = delete;
  ~H5Group();

  /// Names of the direct children, sorted.
  std::vector<std::string> children() const;
  /// True when the child link `name` exists (single component).
  bool has(const std::string& name) const;
  /// True when the relative path `a/b/c` exists.
  bool has_path(const std::string& path) const;
  /// Opens a child group by relative path.
  H5Group group(const std::string& path) const;
  /// True when the child at `path` is a dataset.
  bool is_dataset(const std::string& path) const;
  /// Reads dataset `path` as a tensor (float32 or int32, PyTorch shape).
  torch::Tensor tensor(const std::string& path) const;

  /// True when the attribute exists.
  bool has_attr(const std::string& name) const;
  /// Fixed-length string attribute (nulls trimmed).
  std::string str(const std::string& name) const;
  /// Integer attribute (int64 or int8).
  int64_t int_attr(const std::string& name) const;
  /// Floating attribute.
  double dbl(const std::string& name) const;
  /// All attribute names.
  std::vector<std::string> attr_names() const;

  /// Path for messages.
  const std::string& path() const { return path_; }

 private:
  H5Group(int64_t id, std::string path, bool file) : id_(id), path_(std::move(path)), file_(file) {}
  int64_t id_ = -1;
  std::string path_;
  bool file_ = false;
};

}  // namespace qtool_golden
