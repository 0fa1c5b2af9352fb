// ONNX ModelProto through Debian's libonnx-dev generated protobuf classes.
#include "onnx_writer.hpp"

#include <qsdk/error.hpp>

#include <onnx/onnx_pb.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace qhost::onnx {
namespace {

int32_t elem_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return ::onnx::TensorProto::FLOAT;
    case torch::kChar: return ::onnx::TensorProto::INT8;
    case torch::kByte: return ::onnx::TensorProto::UINT8;
    case torch::kInt: return ::onnx::TensorProto::INT32;
    case torch::kLong: return ::onnx::TensorProto::INT64;
    default: break;
  }
  throw qsdk::Error(qsdk::ErrorCategory::runtime, "qhost export",
                    std::string("internal: no ONNX element type for ") + c10::toString(t));
}

void set_value_info(::onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
                    const std::string& dim_param) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(::onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0) {
      dim->set_dim_param(dim_param);
    } else {
      dim->set_dim_value(d);
    }
  }
}

}  // namespace

Attribute attr(const std::string& name, int64_t value) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::integer;
  a.i = value;
  return a;
}

Attribute attr_f(const std::string& name, float value) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::real;
  a.f = value;
  return a;
}

Attribute attr(const std::string& name, std::vector<int64_t> values) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::integers;
  a.ints = std::move(values);
  return a;
}

struct ModelWriter::Impl {
  ::onnx::ModelProto model;
  ::onnx::GraphProto* graph = nullptr;
};

ModelWriter::ModelWriter(int64_t opset, const std::string& producer_version) : impl_(std::make_unique<Impl>()) {
  auto& m = impl_->model;
  // IR 7 came with opset 13, IR 8 with opset 15.
  m.set_ir_version(opset >= 15 ? 8 : 7);
  m.set_producer_name("qtool");
  m.set_producer_version(producer_version);
  auto* os = m.add_opset_import();
  os->set_domain("");
  os->set_version(opset);
  impl_->graph = m.mutable_graph();
  impl_->graph->set_name("qtool");
}

ModelWriter::~ModelWriter() = default;

void ModelWriter::add_initializer(const std::string& name, const torch::Tensor& value) {
  const torch::Tensor t = value.detach().cpu().contiguous();
  auto* p = impl_->graph->add_initializer();
  p->set_name(name);
  p->set_data_type(elem_type(t.scalar_type()));
  for (int64_t d : t.sizes()) p->add_dims(d);
  // raw_data is little-endian, as torch's CPU tensors on the machines qtool supports.
  p->set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
}

void ModelWriter::add_node(const std::string& op_type, const std::vector<std::string>& inputs,
                           const std::vector<std::string>& outputs, const std::vector<Attribute>& attributes,
                           const std::string& name) {
  auto* n = impl_->graph->add_node();
  n->set_op_type(op_type);
  if (!name.empty()) n->set_name(name);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  for (const auto& a : attributes) {
    auto* p = n->add_attribute();
    p->set_name(a.name);
    switch (a.kind) {
      case Attribute::Kind::integer:
        p->set_type(::onnx::AttributeProto::INT);
        p->set_i(a.i);
        break;
      case Attribute::Kind::real:
        p->set_type(::onnx::AttributeProto::FLOAT);
        p->set_f(a.f);
        break;
      case Attribute::Kind::integers:
        p->set_type(::onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) p->add_ints(v);
        break;
      case Attribute::Kind::text:
        p->set_type(::onnx::AttributeProto::STRING);
        p->set_s(a.s);
        break;
    }
  }
}

void ModelWriter::add_input(const std::string& name, const std::vector<int64_t>& dims, const std::string& dim_param) {
  set_value_info(impl_->graph->add_input(), name, dims, dim_param);
}

void ModelWriter::add_output(const std::string& name, const std::vector<int64_t>& dims, const std::string& dim_param) {
  set_value_info(impl_->graph->add_output(), name, dims, dim_param);
}

void ModelWriter::add_metadata(const std::string& key, const std::string& value) {
  auto* p = impl_->model.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

size_t ModelWriter::node_count() const { return static_cast<size_t>(impl_->graph->node_size()); }

void ModelWriter::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !impl_->model.SerializeToOstream(&out) || !out.flush())
      throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot write the ONNX model: " + std::string(std::strerror(errno)),
                        "check that the folder exists and is writable");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot write the ONNX model: " + ec.message());
  }
}

}  // namespace qhost::onnx
