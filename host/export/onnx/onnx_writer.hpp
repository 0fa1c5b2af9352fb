// onnx_writer.hpp - a small ONNX ModelProto builder with no ONNX or protobuf
// types in its interface, so only onnx_writer.cpp is compiled with Debian's
// libonnx-dev definitions (ONNX_NAMESPACE, ONNX_ML) and qhost_core's objects
// keep their flags (docs/design.md#deployment).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qhost::onnx {

/// One node attribute: an integer, a float, a list of integers or a string.
struct Attribute {
  enum class Kind { integer, real, integers, text };
  std::string name;      ///< attribute name
  Kind kind = Kind::integer;  ///< which member holds the value
  int64_t i = 0;         ///< Kind::integer
  float f = 0;           ///< Kind::real
  std::vector<int64_t> ints;  ///< Kind::integers
  std::string s;         ///< Kind::text
};

/// An integer attribute.
Attribute attr(const std::string& name, int64_t value);
/// A float attribute.
Attribute attr_f(const std::string& name, float value);
/// An integer-list attribute.
Attribute attr(const std::string& name, std::vector<int64_t> values);

/// Builds one ModelProto (a single graph) and writes it.
class ModelWriter {
 public:
  /// `opset` of the default domain; `producer_version` goes into the model.
  ModelWriter(int64_t opset, const std::string& producer_version);
  ~ModelWriter();
  ModelWriter(const ModelWriter&) = delete;
  ModelWriter& operator=(const ModelWriter&) = delete;

  /// A constant tensor (float32, int8, uint8, int32 or int64), stored with its shape.
  void add_initializer(const std::string& name, const torch::Tensor& value);
  /// A node of the default domain.
  void add_node(const std::string& op_type, const std::vector<std::string>& inputs,
                const std::vector<std::string>& outputs, const std::vector<Attribute>& attributes = {},
                const std::string& name = "");
  /// A float32 graph input or output; a negative dimension is the symbolic `dim_param`.
  void add_input(const std::string& name, const std::vector<int64_t>& dims, const std::string& dim_param);
  /// See add_input.
  void add_output(const std::string& name, const std::vector<int64_t>& dims, const std::string& dim_param);
  /// A metadata_props entry.
  void add_metadata(const std::string& key, const std::string& value);
  /// Number of nodes so far.
  size_t node_count() const;
  /// Writes the model to `path` atomically (temporary file, then rename);
  /// throws qsdk::Error(runtime) when it cannot.
  void write(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qhost::onnx
