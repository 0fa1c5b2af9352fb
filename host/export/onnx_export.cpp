// `qhost export`: trace the model with the quantizers replaced by their
// integer forms (qsdk::Exportable), then translate the traced graph to ONNX.
//
// Why a trace: a model plugin's forward (residual adds, pooling, the order of
// norm and activation) exists only as code, so the module tree alone does not
// give the graph. During the trace the host's quantized layers call
// ExportHooks instead of the quantizers (quant_layers.cpp): a quantized weight
// becomes a float constant remembered with its integer codes and scale (written
// as DequantizeLinear of int8 codes), an activation becomes
// aten::fake_quantize_per_{tensor,channel}_affine (written as Clip +
// QuantizeLinear + DequantizeLinear). Quantizers with learned, unequally
// spaced levels (qsdk::LevelExportable) become a Gather of a level table by
// uint8 codes (weights) and a chain of comparisons and Where nodes (activations).
// Nothing is folded: BatchNormalization stays a node, so the integer weights
// are exactly the quantizer's codes.
#include "checkpoint/npy_file.hpp"
#include "export/onnx_export.hpp"

#include "checkpoint/integer_model.hpp"
#include "export/onnx/onnx_writer.hpp"
#include "platform/version_info.hpp"
#include "plugins/registry.hpp"
#include "plugins/registry_call.hpp"
#include "quant/quant_layers.hpp"
#include "run/checkpoint_model.hpp"

#include <qsdk/error.hpp>
#include <qsdk/exportable.hpp>

#include <spdlog/spdlog.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

namespace qhost {
namespace {

namespace fs = std::filesystem;
using qsdk::ErrorCategory;
using torch::jit::Node;
using torch::jit::Value;

/// A quantized weight as the trace saw it: the float constant the layer used,
/// and the integer form it came from.
struct QuantizedWeight {
  std::string path;     ///< layer module path
  torch::Tensor codes;  ///< int8 / int32 (affine) or uint8 level indices, the layer's weight shape
  torch::Tensor scale;  ///< affine: float32, [1] or [shape[axis]]
  int64_t axis = 0;
  torch::Tensor levels;  ///< level table: float32 [L] or [shape[axis], L]; undefined for the affine form
};

/// Index of each weight element into its level table flattened ([L] or [n * L]).
torch::Tensor flat_level_index(const QuantizedWeight& q) {
  torch::Tensor idx = q.codes.to(torch::kLong);
  if (q.levels.dim() == 1) return idx;
  std::vector<int64_t> bshape(static_cast<size_t>(q.codes.dim()), 1);
  bshape[static_cast<size_t>(q.axis)] = q.levels.size(0);
  return idx + (torch::arange(q.levels.size(0), torch::kLong) * q.levels.size(1)).reshape(bshape);
}

/// An activation/output quantizer's integer form, by (path, target): the
/// affine `spec`, or the threshold form when `thresholds` is defined.
struct QuantizedValue {
  std::string path;
  qsdk::QuantTarget target;
  qsdk::ActivationExport spec;
  int64_t axis = 1;  ///< channel axis of the quantized tensor
  torch::Tensor thresholds, levels;  ///< threshold form: float32 [L - 1] / [L] or [C, L - 1] / [C, L]
  bool upper_at_ties = false;
};

/// Stops the trace for its lifetime (work the graph must not contain).
class TracePause {
 public:
  TracePause() : state_(torch::jit::tracer::getTracingState()) { torch::jit::tracer::setTracingState(nullptr); }
  ~TracePause() { torch::jit::tracer::setTracingState(state_); }
  TracePause(const TracePause&) = delete;
  TracePause& operator=(const TracePause&) = delete;

 private:
  std::shared_ptr<torch::jit::tracer::TracingState> state_;
};

std::string quant_slot_type(const std::vector<LayerRecord>& layers, const std::string& path, qsdk::QuantTarget t) {
  for (const auto& r : layers) {
    if (r.path != path) continue;
    const auto& slot = t == qsdk::QuantTarget::weight ? r.weight : t == qsdk::QuantTarget::activation ? r.activation : r.output;
    return slot.type;
  }
  return "";
}

/// The hooks: each quantizer's integer form, through qsdk::Exportable.
class Hooks : public ExportHooks {
 public:
  Hooks(const Registry& registry, const std::vector<LayerRecord>& layers) : registry_(registry), layers_(layers) {}

  torch::Tensor weight(const std::string& path, qsdk::QuantizerImpl& quantizer,
                       const std::function<torch::Tensor()>& weight, torch::IntArrayRef shape) override {
    TracePause pause;
    torch::NoGradGuard no_grad;
    const torch::Tensor w = weight().detach();
    if (const auto* levels = level_form(quantizer)) return level_weight(path, *levels, w, shape);
    auto* exportable = exportable_of(path, qsdk::QuantTarget::weight, quantizer);
    const qsdk::WeightExport e =
        call(path, qsdk::QuantTarget::weight, [&] { return exportable->export_weight(w); });
    const std::string where = path + ": quant_weight";
    if (!e.codes.defined() || e.codes.sizes() != w.sizes() ||
        (e.codes.scalar_type() != torch::kChar && e.codes.scalar_type() != torch::kInt))
      throw qsdk::Error(ErrorCategory::plugin, where,
                        "export_weight returned codes that are not int8/int32 of the weight's shape");
    torch::Tensor scale = e.scale.defined() ? e.scale.detach().to(torch::kFloat).reshape({-1}) : torch::Tensor();
    if (!scale.defined() || (scale.numel() != 1 && (e.axis < 0 || e.axis >= w.dim() || scale.numel() != w.size(e.axis))))
      throw qsdk::Error(ErrorCategory::plugin, where, "export_weight returned a scale that matches neither one "
                                                      "element nor the size of its axis");
    // The layer's shape drops the leading 1s of the quantizer's view ([1, 1, out, in] -> [out, in]).
    const int64_t dropped = w.dim() - static_cast<int64_t>(shape.size());
    int64_t axis = e.axis - dropped;
    if (scale.numel() == 1) axis = 0;
    if (scale.numel() != 1 && (axis < 0 || shape[axis] != scale.numel()))
      throw qsdk::Error(ErrorCategory::runtime, where, "the per-channel axis of the weight is not an axis of the layer");
    QuantizedWeight q{path, e.codes.reshape(shape).contiguous(), scale.contiguous(), axis};
    std::vector<int64_t> bshape(shape.size(), 1);
    if (scale.numel() != 1) bshape[axis] = scale.numel();
    torch::Tensor deq = (q.codes.to(torch::kFloat) * scale.reshape(bshape)).contiguous();
    weights_[deq.unsafeGetTensorImpl()] = q;
    keep_.push_back(deq);
    return deq;
  }

  torch::Tensor activation(const std::string& path, qsdk::QuantTarget target, qsdk::QuantizerImpl& quantizer,
                           const torch::Tensor& x, int64_t axis) override {
    if (const auto* levels = level_form(quantizer)) return level_activation(path, target, *levels, x, axis);
    qsdk::ActivationExport e;
    {
      TracePause pause;
      auto* exportable = exportable_of(path, target, quantizer);
      e = call(path, target, [&] { return exportable->export_activation(); });
      const std::string where = path + ": quant_" + qsdk::to_string(target);
      const int64_t tmin = e.is_signed ? -128 : 0, tmax = e.is_signed ? 127 : 255;
      if (!e.scale.defined() || (e.scale.numel() != 1 && e.scale.numel() != x.size(axis)) || e.qmin > e.qmax ||
          e.zero_point < e.qmin || e.zero_point > e.qmax || e.qmin < tmin || e.qmax > tmax)
        throw qsdk::Error(ErrorCategory::plugin, where,
                          "export_activation returned an inconsistent scale, zero point or range");
      e.scale = e.scale.detach().to(torch::kFloat).reshape({-1}).contiguous();
      values_.push_back({path, target, e, axis});
    }
    // Recorded by the trace as one node whose constant arguments carry the scale,
    // zero point and range (translated in Translator::fake_quantize).
    if (e.scale.numel() == 1)
      return at::fake_quantize_per_tensor_affine(x, e.scale.item<double>(), e.zero_point, e.qmin, e.qmax);
    return at::fake_quantize_per_channel_affine(x, e.scale, torch::full_like(e.scale, e.zero_point, torch::kInt),
                                                axis, e.qmin, e.qmax);
  }

  bool pads_first(qsdk::QuantizerImpl& quantizer) const override { return level_form(quantizer) != nullptr; }

  const QuantizedWeight* find_weight(const torch::Tensor& t) const {
    auto it = weights_.find(t.unsafeGetTensorImpl());
    return it == weights_.end() ? nullptr : &it->second;
  }
  const std::vector<QuantizedValue>& values() const { return values_; }
  const std::unordered_map<const void*, QuantizedWeight>& weights() const { return weights_; }
  size_t weight_count() const { return weights_.size(); }
  int64_t level_activation_count() const { return level_activations_; }

 private:
  /// The quantizer's level form when it deploys through one.
  static const qsdk::LevelExportable* level_form(qsdk::QuantizerImpl& quantizer) {
    auto* l = dynamic_cast<const qsdk::LevelExportable*>(&quantizer);
    return l && l->uses_levels() ? l : nullptr;
  }

  /// levels[codes] as the float constant the trace uses, remembered with its codes and table.
  torch::Tensor level_weight(const std::string& path, const qsdk::LevelExportable& quantizer, const torch::Tensor& w,
                             torch::IntArrayRef shape) {
    const qsdk::LevelWeightExport e =
        call(path, qsdk::QuantTarget::weight, [&] { return quantizer.export_weight_levels(w); });
    const std::string where = path + ": quant_weight";
    if (!e.codes.defined() || e.codes.sizes() != w.sizes() || e.codes.scalar_type() != torch::kByte)
      throw qsdk::Error(ErrorCategory::plugin, where,
                        "export_weight_levels returned codes that are not uint8 of the weight's shape");
    torch::Tensor levels = e.levels.defined() ? e.levels.detach().to(torch::kFloat).contiguous() : torch::Tensor();
    const bool one = levels.defined() && levels.dim() == 1;
    if (!levels.defined() || !(one || levels.dim() == 2) || levels.size(-1) < 2 ||
        (!one && (e.axis < 0 || e.axis >= w.dim() || levels.size(0) != w.size(e.axis))) ||
        e.codes.max().item<int64_t>() >= levels.size(-1))
      throw qsdk::Error(ErrorCategory::plugin, where,
                        "export_weight_levels returned a level table that matches neither one table nor one per "
                        "index of its axis, or codes beyond it");
    // The layer's shape drops the leading 1s of the quantizer's view ([1, 1, out, in] -> [out, in]).
    const int64_t axis = one ? 0 : e.axis - (w.dim() - static_cast<int64_t>(shape.size()));
    if (!one && (axis < 0 || shape[axis] != levels.size(0)))
      throw qsdk::Error(ErrorCategory::runtime, where, "the per-channel axis of the weight is not an axis of the layer");
    QuantizedWeight q{path, e.codes.reshape(shape).contiguous(), torch::Tensor(), axis, levels};
    torch::Tensor deq = torch::take(levels, flat_level_index(q)).contiguous();
    weights_[deq.unsafeGetTensorImpl()] = q;
    keep_.push_back(deq);
    return deq;
  }

  /// The sorted-by-position level chain: y = l0, then for each threshold
  /// y = where(x passes t_i, l_{i+1}, y), so the last threshold passed decides,
  /// as LevelActivationExport defines (traced as aten::gt / aten::lt and aten::where).
  torch::Tensor level_activation(const std::string& path, qsdk::QuantTarget target,
                                 const qsdk::LevelExportable& quantizer, const torch::Tensor& x, int64_t axis) {
    std::vector<torch::Tensor> thresholds, levels;
    bool upper_at_ties = false;
    {
      TracePause pause;
      const qsdk::LevelActivationExport e = call(path, target, [&] { return quantizer.export_activation_levels(); });
      const std::string where = path + ": quant_" + qsdk::to_string(target);
      const torch::Tensor thr = e.thresholds.defined() ? e.thresholds.detach().to(torch::kFloat) : torch::Tensor();
      const torch::Tensor lev = e.levels.defined() ? e.levels.detach().to(torch::kFloat) : torch::Tensor();
      const bool one = thr.defined() && thr.dim() == 1;
      if (!thr.defined() || !lev.defined() || thr.dim() != lev.dim() || !(one || thr.dim() == 2) ||
          lev.size(-1) < 2 || thr.size(-1) != lev.size(-1) - 1 ||
          (!one && (thr.size(0) != x.size(axis) || lev.size(0) != x.size(axis))))
        throw qsdk::Error(ErrorCategory::plugin, where,
                          "export_activation_levels returned thresholds and levels of inconsistent shapes");
      // One value, or one per channel broadcast along `axis`.
      std::vector<int64_t> bshape;
      if (!one) {
        bshape.assign(static_cast<size_t>(x.dim()), 1);
        bshape[static_cast<size_t>(axis)] = x.size(axis);
      }
      for (int64_t i = 0; i < thr.size(-1); ++i) thresholds.push_back(thr.select(-1, i).reshape(bshape).clone());
      for (int64_t i = 0; i < lev.size(-1); ++i) levels.push_back(lev.select(-1, i).reshape(bshape).clone());
      upper_at_ties = e.upper_at_ties;
      // Remembered for the integer model (write_qtool), which stores the tables as they are.
      QuantizedValue v{path, target, qsdk::ActivationExport{}, axis};
      v.thresholds = thr.contiguous();
      v.levels = lev.contiguous();
      v.upper_at_ties = e.upper_at_ties;
      values_.push_back(std::move(v));
    }
    torch::Tensor y = levels[0];
    for (size_t i = 0; i < thresholds.size(); ++i)
      y = upper_at_ties ? at::where(at::lt(x, thresholds[i]), y, levels[i + 1])
                        : at::where(at::gt(x, thresholds[i]), levels[i + 1], y);
    ++level_activations_;
    return y;
  }

  const qsdk::Exportable* exportable_of(const std::string& path, qsdk::QuantTarget target,
                                        qsdk::QuantizerImpl& quantizer) const {
    auto* e = dynamic_cast<const qsdk::Exportable*>(&quantizer);
    if (e) return e;
    const std::string type = quant_slot_type(layers_, path, target);
    const std::string who = type.empty() ? "its quantizer" : "quantizer/" + type;
    throw qsdk::Error(ErrorCategory::config, path + ": quant_" + qsdk::to_string(target),
                      who + " has no exact ONNX form: it implements neither qsdk::Exportable nor qsdk::LevelExportable",
                      "qhost export supports lsq, dorefa, pact, xnor, lqnet and nonuniform; see README.md#deploy");
  }

  template <class Fn>
  auto call(const std::string& path, qsdk::QuantTarget target, Fn&& fn) -> decltype(fn()) {
    const std::string type = quant_slot_type(layers_, path, target);
    const Component* c = type.empty() ? nullptr : registry_.find(qsdk::Kind::quantizer, type);
    if (!c) return fn();
    return call_plugin(*c, std::forward<Fn>(fn));
  }

  const Registry& registry_;
  const std::vector<LayerRecord>& layers_;
  std::unordered_map<const void*, QuantizedWeight> weights_;
  std::vector<torch::Tensor> keep_;
  std::vector<QuantizedValue> values_;
  int64_t level_activations_ = 0;
};


/// Translates the traced graph node by node.
class Translator {
 public:
  Translator(onnx::ModelWriter& out, const Hooks& hooks, std::unordered_map<const void*, std::string> param_names)
      : out_(out), hooks_(hooks), param_names_(std::move(param_names)) {}

  void bind(const Value* v, const std::string& name) { names_[v] = name; }

  std::string name_of(const Value* v) {
    auto it = names_.find(v);
    if (it != names_.end()) return it->second;
    const Node* n = v->node();
    if (n->kind() == c10::prim::Constant && v->type()->isSubtypeOf(*c10::TensorType::get()))
      return constant_tensor(v, n->t(c10::attr::value));
    fail(n, "an input that is not a tensor computed by the graph");
  }

  void translate(const Node* n) {
    const std::string op = n->kind().toQualString();
    if (n->kind() == c10::prim::Constant || n->kind() == c10::prim::ListConstruct) return;  // read by their users
    if (op == "aten::conv2d" || op == "aten::_convolution") return conv(n, op == "aten::_convolution");
    if (op == "aten::batch_norm") return batch_norm(n);
    if (op == "aten::relu" || op == "aten::relu_") return simple(n, "Relu");
    if (op == "aten::hardtanh" || op == "aten::hardtanh_") return hardtanh(n);
    if (op == "aten::add" || op == "aten::add_") return binary(n, "Add", true);
    if (op == "aten::sub" || op == "aten::sub_") return binary(n, "Sub", true);
    if (op == "aten::mul" || op == "aten::mul_") return binary(n, "Mul", false);
    if (op == "aten::div" || op == "aten::div_") return binary(n, "Div", false);
    if (op == "aten::adaptive_avg_pool2d") return adaptive_avg_pool(n);
    if (op == "aten::max_pool2d") return max_pool(n);
    if (op == "aten::avg_pool2d") return avg_pool(n);
    if (op == "aten::flatten") return flatten(n);
    if (op == "aten::linear") return linear(n);
    if (op == "aten::constant_pad_nd") return pad(n);
    if (op == "aten::cat") return cat(n);
    // Threshold forms of quantizers (Hooks::level_activation).
    if (op == "aten::gt") return binary(n, "Greater", false);
    if (op == "aten::lt") return binary(n, "Less", false);
    if (op == "aten::where") return where(n);
    if (op == "aten::fake_quantize_per_tensor_affine" || op == "aten::fake_quantize_per_channel_affine")
      return fake_quantize(n, op == "aten::fake_quantize_per_channel_affine");
    if (op == "aten::contiguous" || op == "aten::clone" || op == "aten::detach" || op == "aten::dropout" ||
        op == "aten::dropout_" || op == "aten::feature_dropout") {
      if ((op == "aten::dropout" || op == "aten::dropout_" || op == "aten::feature_dropout") &&
          constant(n->input(2)).toBool())
        fail(n, "dropout in training mode");
      return alias(n);
    }
    fail(n, "an operator qhost export does not translate to ONNX");
  }

  /// How many QuantizeLinear nodes were written.
  int64_t qdq_count() const { return qdq_; }

 private:
  [[noreturn]] void fail(const Node* n, const std::string& what) const {
    std::ostringstream s;
    s << *n;
    std::string text = s.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    throw qsdk::Error(ErrorCategory::runtime, "qhost export",
                      "the traced model uses " + std::string(n->kind().toQualString()) + " (" + what + "): " + text,
                      "export covers the conv/linear/batch-norm/ReLU/pooling/add networks of the ResNet plugins; "
                      "other layers need a translation in host/export/onnx_export.cpp");
  }

  c10::IValue constant(const Value* v) const {
    auto iv = torch::jit::toIValue(v);
    if (!iv) fail(v->node(), "an argument that is not a constant");
    return *iv;
  }

  /// A constant int or float argument as a double.
  double number(const Value* v) const { return constant(v).toScalar().to<double>(); }

  std::vector<int64_t> ints(const Value* v) const {
    const Node* n = v->node();
    if (n->kind() == c10::prim::ListConstruct) {
      std::vector<int64_t> r;
      for (const Value* i : n->inputs()) r.push_back(constant(i).toInt());
      return r;
    }
    return constant(v).toIntVector();
  }

  bool is_none(const Value* v) const { return v->type()->kind() == c10::TypeKind::NoneType; }

  std::string fresh(const std::string& hint) { return hint + "_" + std::to_string(counter_++); }

  std::string out_name(const Node* n, size_t i = 0) {
    const std::string name = fresh(std::string(n->kind().toUnqualString()));
    names_[n->output(i)] = name;
    return name;
  }

  std::string initializer(const std::string& hint, const torch::Tensor& t) {
    const std::string name = fresh(hint);
    out_.add_initializer(name, t);
    return name;
  }

  std::string float_scalar(const std::string& hint, double v) {
    return initializer(hint, torch::full({}, v, torch::kFloat));
  }

  std::string constant_tensor(const Value* v, const torch::Tensor& t) {
    std::string name;
    if (const QuantizedWeight* q = hooks_.find_weight(t); q && q->levels.defined()) {
      name = level_weight(*q);
    } else if (q) {
      // The integer codes and their step; DequantizeLinear gives the float weight.
      const std::string codes = q->path + ".weight_quantized";
      const std::string scale = q->path + ".weight_scale";
      const std::string zero = q->path + ".weight_zero_point";
      out_.add_initializer(codes, q->codes);
      out_.add_initializer(scale, q->scale.numel() == 1 ? q->scale.reshape({}) : q->scale);
      out_.add_initializer(zero, torch::zeros(q->scale.numel() == 1 ? std::vector<int64_t>{} : std::vector<int64_t>{q->scale.numel()},
                                              q->codes.options()));
      name = q->path + ".weight";
      std::vector<onnx::Attribute> attrs;
      if (q->scale.numel() != 1) attrs.push_back(onnx::attr("axis", q->axis));
      out_.add_node("DequantizeLinear", {codes, scale, zero}, {name}, attrs, q->path + ".weight_dequantize");
    } else {
      auto it = param_names_.find(t.unsafeGetTensorImpl());
      if (it == param_names_.end()) it = param_names_.find(t.data_ptr());
      torch::Tensor value = t.detach();
      if (value.scalar_type() == torch::kDouble) value = value.to(torch::kFloat);
      if (it != param_names_.end() && !used_params_.count(it->second)) {
        name = it->second;
        used_params_.insert({name, true});
        out_.add_initializer(name, value);
      } else {
        name = initializer("const", value);
      }
    }
    names_[v] = name;
    return name;
  }

  /// Gather(levels, codes): uint8 codes widened to int64 (Gather's index
  /// type), offset by channel * L into the flattened tables when there is one
  /// table per channel. Every value is a table entry, so the weight is exact.
  std::string level_weight(const QuantizedWeight& q) {
    const std::string codes = q.path + ".weight_codes";
    const std::string levels = q.path + ".weight_levels";
    out_.add_initializer(codes, q.codes);
    out_.add_initializer(levels, q.levels.reshape({-1}).contiguous());
    std::string index = fresh("weight_index");
    out_.add_node("Cast", {codes}, {index}, {onnx::attr("to", int64_t{7})});  // TensorProto::INT64
    if (q.levels.dim() == 2) {
      std::vector<int64_t> bshape(static_cast<size_t>(q.codes.dim()), 1);
      bshape[static_cast<size_t>(q.axis)] = q.levels.size(0);
      const std::string offsets = initializer(
          "level_offsets", (torch::arange(q.levels.size(0), torch::kLong) * q.levels.size(1)).reshape(bshape));
      const std::string shifted = fresh("weight_index");
      out_.add_node("Add", {index, offsets}, {shifted});
      index = shifted;
    }
    const std::string name = q.path + ".weight";
    out_.add_node("Gather", {levels, index}, {name}, {onnx::attr("axis", int64_t{0})}, q.path + ".weight_gather");
    return name;
  }

  void alias(const Node* n) { names_[n->output()] = name_of(n->input(0)); }

  void simple(const Node* n, const std::string& op) { out_.add_node(op, {name_of(n->input(0))}, {out_name(n)}); }

  void conv(const Node* n, bool underscore) {
    // conv2d(input, weight, bias, stride, padding, dilation, groups)
    // _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
    if (underscore && constant(n->input(6)).toBool()) fail(n, "a transposed convolution");
    if (n->input(4)->type()->kind() == c10::TypeKind::StringType) fail(n, "a string padding");
    const auto stride = ints(n->input(3)), padding = ints(n->input(4)), dilation = ints(n->input(5));
    const int64_t groups = constant(n->input(underscore ? 8 : 6)).toInt();
    std::vector<std::string> in{name_of(n->input(0)), name_of(n->input(1))};
    if (!is_none(n->input(2))) in.push_back(name_of(n->input(2)));
    std::vector<int64_t> pads(padding);
    pads.insert(pads.end(), padding.begin(), padding.end());
    out_.add_node("Conv", in, {out_name(n)},
                  {onnx::attr("strides", stride), onnx::attr("pads", pads), onnx::attr("dilations", dilation),
                   onnx::attr("group", groups)});
  }

  void batch_norm(const Node* n) {
    // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
    if (constant(n->input(5)).toBool()) fail(n, "batch statistics at inference (training = true)");
    if (is_none(n->input(3)) || is_none(n->input(4))) fail(n, "a batch norm without running statistics");
    const Node* mean_node = n->input(3)->node();
    if (mean_node->kind() != c10::prim::Constant) fail(n, "running statistics that are not constants");
    const int64_t c = mean_node->t(c10::attr::value).numel();
    const std::string scale = is_none(n->input(1)) ? initializer("bn_scale", torch::ones({c})) : name_of(n->input(1));
    const std::string bias = is_none(n->input(2)) ? initializer("bn_bias", torch::zeros({c})) : name_of(n->input(2));
    out_.add_node("BatchNormalization",
                  {name_of(n->input(0)), scale, bias, name_of(n->input(3)), name_of(n->input(4))}, {out_name(n)},
                  {onnx::attr_f("epsilon", static_cast<float>(number(n->input(7))))});
  }

  void hardtanh(const Node* n) {
    out_.add_node("Clip",
                  {name_of(n->input(0)), float_scalar("clip_min", number(n->input(1))),
                   float_scalar("clip_max", number(n->input(2)))},
                  {out_name(n)});
  }

  std::string operand(const Value* v) {
    if (v->type()->isSubtypeOf(*c10::TensorType::get())) return name_of(v);
    return float_scalar("scalar", number(v));
  }

  void binary(const Node* n, const std::string& op, bool has_alpha) {
    if (has_alpha && n->inputs().size() > 2 && number(n->input(2)) != 1.0) fail(n, "alpha != 1");
    if (!has_alpha && n->inputs().size() > 2) fail(n, "a rounding mode");
    out_.add_node(op, {operand(n->input(0)), operand(n->input(1))}, {out_name(n)});
  }

  void where(const Node* n) {
    if (n->inputs().size() != 3) fail(n, "a form other than where(condition, self, other)");
    out_.add_node("Where", {name_of(n->input(0)), operand(n->input(1)), operand(n->input(2))}, {out_name(n)});
  }

  void adaptive_avg_pool(const Node* n) {
    const auto size = ints(n->input(1));
    if (size != std::vector<int64_t>{1, 1}) fail(n, "an output size other than 1x1");
    simple(n, "GlobalAveragePool");
  }

  static std::vector<int64_t> pair(std::vector<int64_t> v) {
    if (v.size() == 1) v.push_back(v[0]);
    return v;
  }

  // kernel_shape, strides (the kernel when empty) and pads of a 2-D pooling
  // whose kernel_size, stride and padding are inputs 1, 2 and 3.
  std::vector<onnx::Attribute> pool_geometry(const Node* n) {
    auto kernel = pair(ints(n->input(1))), stride = ints(n->input(2)), padding = pair(ints(n->input(3)));
    if (stride.empty()) stride = kernel;
    stride = pair(stride);
    std::vector<int64_t> pads(padding);
    pads.insert(pads.end(), padding.begin(), padding.end());
    return {onnx::attr("kernel_shape", kernel), onnx::attr("strides", stride), onnx::attr("pads", pads)};
  }

  void max_pool(const Node* n) {
    // max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)
    auto attrs = pool_geometry(n);
    attrs.push_back(onnx::attr("dilations", pair(ints(n->input(4)))));
    attrs.push_back(onnx::attr("ceil_mode", constant(n->input(5)).toBool() ? 1 : 0));
    out_.add_node("MaxPool", {name_of(n->input(0))}, {out_name(n)}, attrs);
  }

  void avg_pool(const Node* n) {
    // avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    if (!is_none(n->input(6))) fail(n, "a divisor override");
    auto attrs = pool_geometry(n);
    attrs.push_back(onnx::attr("ceil_mode", constant(n->input(4)).toBool() ? 1 : 0));
    attrs.push_back(onnx::attr("count_include_pad", constant(n->input(5)).toBool() ? 1 : 0));
    out_.add_node("AveragePool", {name_of(n->input(0))}, {out_name(n)}, attrs);
  }

  void flatten(const Node* n) {
    const int64_t start = constant(n->input(1)).toInt(), end = constant(n->input(2)).toInt();
    const auto type = n->input(0)->type()->cast<c10::TensorType>();
    const auto rank = type ? type->dim() : c10::nullopt;
    if (start != 1 || !(end == -1 || (rank && end == static_cast<int64_t>(*rank) - 1)))
      fail(n, "a flatten other than flatten(1)");
    out_.add_node("Flatten", {name_of(n->input(0))}, {out_name(n)}, {onnx::attr("axis", int64_t{1})});
  }

  void linear(const Node* n) {
    const auto type = n->input(0)->type()->cast<c10::TensorType>();
    if (!type || type->dim() != c10::optional<size_t>(2)) fail(n, "an input that is not 2-D");
    std::vector<std::string> in{name_of(n->input(0)), name_of(n->input(1))};
    if (!is_none(n->input(2))) in.push_back(name_of(n->input(2)));
    out_.add_node("Gemm", in, {out_name(n)}, {onnx::attr("transB", int64_t{1})});
  }

  void pad(const Node* n) {
    const auto p = ints(n->input(1));
    const auto type = n->input(0)->type()->cast<c10::TensorType>();
    if (!type || !type->dim()) fail(n, "an input of unknown rank");
    const int64_t rank = static_cast<int64_t>(*type->dim());
    // torch: (last dim begin, end, second-to-last begin, end, ...); ONNX: all begins, then all ends.
    std::vector<int64_t> pads(2 * rank, 0);
    for (size_t i = 0; 2 * i + 1 < p.size(); ++i) {
      const int64_t d = rank - 1 - static_cast<int64_t>(i);
      pads[d] = p[2 * i];
      pads[rank + d] = p[2 * i + 1];
    }
    if (*std::min_element(pads.begin(), pads.end()) < 0) fail(n, "negative padding (cropping)");
    out_.add_node("Pad",
                  {name_of(n->input(0)), initializer("pads", torch::tensor(pads, torch::kLong)),
                   float_scalar("pad_value", number(n->input(2)))},
                  {out_name(n)}, {});
  }

  void cat(const Node* n) {
    const Node* list = n->input(0)->node();
    if (list->kind() != c10::prim::ListConstruct) fail(n, "a tensor list that is not built in the graph");
    std::vector<std::string> in;
    for (const Value* v : list->inputs()) in.push_back(name_of(v));
    out_.add_node("Concat", in, {out_name(n)}, {onnx::attr("axis", constant(n->input(1)).toInt())});
  }

  void fake_quantize(const Node* n, bool per_channel) {
    // per_tensor(input, scale, zero_point, quant_min, quant_max)
    // per_channel(input, scale, zero_point, axis, quant_min, quant_max)
    torch::Tensor scale, zero;
    int64_t axis = 1, qmin = 0, qmax = 0;
    if (per_channel) {
      scale = n->input(1)->node()->t(c10::attr::value).to(torch::kFloat);
      zero = n->input(2)->node()->t(c10::attr::value).to(torch::kLong);
      axis = constant(n->input(3)).toInt();
      qmin = constant(n->input(4)).toInt();
      qmax = constant(n->input(5)).toInt();
    } else {
      scale = torch::full({}, number(n->input(1)), torch::kFloat);
      zero = torch::full({}, constant(n->input(2)).toInt(), torch::kLong);
      qmin = constant(n->input(3)).toInt();
      qmax = constant(n->input(4)).toInt();
    }
    const bool is_signed = qmin < 0;
    const auto code_type = is_signed ? torch::kChar : torch::kByte;
    const int64_t tmin = is_signed ? -128 : 0, tmax = is_signed ? 127 : 255;
    const std::string x = name_of(n->input(0));
    const std::string s = initializer("q_scale", scale);
    const std::string z = initializer("q_zero_point", zero.to(code_type));
    std::vector<onnx::Attribute> attrs;
    if (per_channel) attrs.push_back(onnx::attr("axis", axis));
    std::string clipped = x;
    if (qmin > tmin || qmax < tmax) {
      // QuantizeLinear saturates to the type's range only; the method's levels
      // end at qmin/qmax, so the input is clipped to their values first.
      torch::Tensor lo = (torch::full_like(scale, static_cast<double>(qmin)) - zero.to(torch::kFloat)) * scale;
      torch::Tensor hi = (torch::full_like(scale, static_cast<double>(qmax)) - zero.to(torch::kFloat)) * scale;
      clipped = fresh("clipped");
      if (!per_channel) {
        out_.add_node("Clip", {x, initializer("clip_min", lo), initializer("clip_max", hi)}, {clipped});
      } else {
        const auto type = n->input(0)->type()->cast<c10::TensorType>();
        if (!type || !type->dim()) fail(n, "an input of unknown rank");
        std::vector<int64_t> shape(*type->dim(), 1);
        if (axis < 0) axis += static_cast<int64_t>(shape.size());
        shape[axis] = scale.numel();
        const std::string low = fresh("clip_low");
        out_.add_node("Max", {x, initializer("clip_min", lo.reshape(shape))}, {low});
        out_.add_node("Min", {low, initializer("clip_max", hi.reshape(shape))}, {clipped});
      }
    }
    const std::string q = fresh("quantized");
    out_.add_node("QuantizeLinear", {clipped, s, z}, {q}, attrs);
    out_.add_node("DequantizeLinear", {q, s, z}, {out_name(n)}, attrs);
    ++qdq_;
  }

  onnx::ModelWriter& out_;
  const Hooks& hooks_;
  std::unordered_map<const void*, std::string> param_names_;
  std::map<std::string, bool> used_params_;
  std::unordered_map<const Value*, std::string> names_;
  int64_t counter_ = 0;
  int64_t qdq_ = 0;
};

/// A constant tensor argument of a traced node, or an undefined tensor.
torch::Tensor constant_tensor_of(const Value* v) {
  const Node* n = v->node();
  if (n->kind() != c10::prim::Constant || !v->type()->isSubtypeOf(*c10::TensorType::get())) return {};
  return n->t(c10::attr::value);
}

/// The batch norms that directly follow a quantized conv/linear layer (their
/// only use), folded with the layer's bias: found in the traced graph, since
/// only the model's forward knows which norm follows which layer.
std::vector<FoldedNorm> folded_norms(const torch::jit::Graph& graph, const Hooks& hooks) {
  std::vector<FoldedNorm> out;
  for (const Node* n : graph.nodes()) {
    if (std::string(n->kind().toQualString()) != "aten::batch_norm") continue;
    const Node* layer = n->input(0)->node();
    const std::string op = layer->kind().toQualString();
    if ((op != "aten::conv2d" && op != "aten::_convolution" && op != "aten::linear") ||
        layer->output()->uses().size() != 1)
      continue;
    const torch::Tensor w = constant_tensor_of(layer->input(1));
    const QuantizedWeight* q = w.defined() ? hooks.find_weight(w) : nullptr;
    const torch::Tensor mean = constant_tensor_of(n->input(3)), var = constant_tensor_of(n->input(4));
    if (!q || !mean.defined() || !var.defined()) continue;
    const int64_t c = mean.numel();
    const double eps = torch::jit::toIValue(n->input(7))->toDouble();
    torch::Tensor gamma = constant_tensor_of(n->input(1)), beta = constant_tensor_of(n->input(2));
    torch::Tensor bias = constant_tensor_of(layer->input(2));
    if (!gamma.defined()) gamma = torch::ones({c});
    if (!beta.defined()) beta = torch::zeros({c});
    if (!bias.defined()) bias = torch::zeros({c});
    const torch::Tensor scale = gamma.to(torch::kFloat) / torch::sqrt(var.to(torch::kFloat) + eps);
    out.push_back({q->path, scale, beta.to(torch::kFloat) + (bias.to(torch::kFloat) - mean.to(torch::kFloat)) * scale});
  }
  return out;
}

/// Writes the integer model of the traced model (docs/integer-model.md).
void write_qtool(const std::string& output, const CheckpointModel& m, const Hooks& hooks,
                 const torch::jit::Graph& graph) {
  IntegerModel im;
  im.meta.epoch = m.epoch;
  im.meta.resolved_toml = m.resolved_toml;
  const auto names = layer_weight_names(*m.model);
  std::set<std::string> quantized;
  for (const auto& [impl, q] : hooks.weights()) {
    (void)impl;
    if (!quantized.insert(q.path).second) continue;  // a layer run twice: one entry
    int64_t num_levels = 0;
    for (const auto& r : m.layers)
      if (r.path == q.path) num_levels = r.weight.levels;
    im.weights.push_back({q.path, q.codes, q.scale, q.axis, q.levels, num_levels});
  }
  for (const auto& r : m.layers)
    if (r.weight.active() && quantized.count(r.path) == 0)
      throw qsdk::Error(ErrorCategory::runtime, r.path + ": quant_weight",
                        "the traced forward never used this layer's quantized weight",
                        "the integer model stores every quantized layer of the model");
  std::set<std::string> weight_params;
  for (const auto& path : quantized) weight_params.insert(names.at(path));
  for (const auto& [name, t] : module_state(*m.model))
    if (weight_params.count(name) == 0) im.floats.emplace_back(name, t);
  std::set<std::string> seen;
  for (const auto& v : hooks.values()) {
    if (!seen.insert(v.path + "/" + qsdk::to_string(v.target)).second) continue;
    im.activations.push_back({v.path, v.target, v.spec.scale, v.spec.zero_point, v.spec.qmin, v.spec.qmax, v.axis,
                              v.thresholds, v.levels, v.upper_at_ties});
  }
  im.norms = folded_norms(graph, hooks);
  write_integer_model(output, im);
  spdlog::info("export: integer model {} ({} quantized weights, {} quantized activations, {} folded batch norms)",
               output, im.weights.size(), im.activations.size(), im.norms.size());
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path best = fs::path(path) / "best.h5";
    if (!fs::exists(best, ec))
      throw qsdk::Error(ErrorCategory::checkpoint, path, "the run folder has no best.h5",
                        "name a checkpoint file, e.g. " + (fs::path(path) / "last.h5").string());
    return best.string();
  }
  if (!fs::exists(path, ec)) throw qsdk::Error(ErrorCategory::checkpoint, path, "no such checkpoint file or run folder");
  return path;
}

}  // namespace

int export_checkpoint(Registry& registry, PluginLoader& loader, const ExportOptions& options) {
  if (options.format != "onnx" && options.format != "qtool")
    throw qsdk::Error(ErrorCategory::usage, "--format", "'" + options.format + "' is neither onnx nor qtool",
                      "onnx: standard operators (README.md#deploy); qtool: the integer model (docs/integer-model.md)");
  const bool qtool = options.format == "qtool";
  if (qtool && !options.overrides.empty())
    throw qsdk::Error(ErrorCategory::usage, "--set", "not supported with --format qtool",
                      "the integer model stores the checkpoint's own configuration, which --set would contradict");
  if (qtool && !options.reference.empty())
    throw qsdk::Error(ErrorCategory::usage, "--reference", "only with --format onnx",
                      "compare an integer model with qhost eval on both files");
  if (options.opset < kMinExportOpset || options.opset > kMaxExportOpset)
    throw qsdk::Error(ErrorCategory::usage, "--opset",
                      std::to_string(options.opset) + " is outside [" + std::to_string(kMinExportOpset) + ", " +
                          std::to_string(kMaxExportOpset) + "]",
                      "13 has per-channel QuantizeLinear/DequantizeLinear; 17 is the newest Debian's onnx checks");
  if (options.batch == 0 || options.batch < -1)
    throw qsdk::Error(ErrorCategory::usage, "--batch", "a batch size must be positive", "use --batch dynamic or N >= 1");
  if (options.reference_batch < 1)
    throw qsdk::Error(ErrorCategory::usage, "--reference-batch", "a batch size must be positive");
  const std::string checkpoint = resolve_checkpoint(options.checkpoint);
  CheckpointModelOptions mo;
  mo.overrides = options.overrides;
  mo.trust_checkpoint_plugins = options.trust_checkpoint_plugins;
  mo.synthetic = options.synthetic;
  CheckpointModel m = load_checkpoint_model(registry, loader, checkpoint, mo);
  if (m.sample_shape.size() != 3)
    throw qsdk::Error(ErrorCategory::runtime, checkpoint, "qhost export needs image samples [C, H, W]");

  // The trace: every parameter becomes a constant, so none may require a gradient.
  for (auto& p : m.model->parameters()) p.set_requires_grad(false);
  m.model->eval();
  std::unordered_map<const void*, std::string> param_names;
  for (const auto& item : m.model->named_parameters()) {
    param_names[item.value().unsafeGetTensorImpl()] = item.key();
    param_names[item.value().data_ptr()] = item.key();
  }
  for (const auto& item : m.model->named_buffers()) {
    param_names[item.value().unsafeGetTensorImpl()] = item.key();
    param_names[item.value().data_ptr()] = item.key();
  }

  Hooks hooks(registry, m.layers);
  std::shared_ptr<torch::jit::Graph> graph;
  {
    torch::NoGradGuard no_grad;
    // Batch 2: a dimension that equals no other, so a size the model reads
    // from its input cannot be mistaken for a channel count.
    const int64_t trace_batch = options.batch > 0 ? options.batch : 2;
    std::vector<int64_t> shape{trace_batch};
    shape.insert(shape.end(), m.sample_shape.begin(), m.sample_shape.end());
    torch::Tensor example = torch::zeros(shape);
    ExportHooksScope scope(&hooks);
    auto traced = torch::jit::tracer::trace(
        {example},
        [&](torch::jit::Stack in) -> torch::jit::Stack { return {m.model->forward(in[0].toTensor())}; },
        [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/false);
    graph = traced.first->graph;
  }
  torch::jit::EliminateDeadCode(graph);
  if (graph->inputs().size() != 1 || graph->outputs().size() != 1 ||
      !graph->outputs()[0]->type()->isSubtypeOf(*c10::TensorType::get()))
    throw qsdk::Error(ErrorCategory::runtime, "qhost export", "the traced model is not one tensor in, one tensor out");

  if (qtool) {
    write_qtool(options.output, m, hooks, *graph);
    std::printf("exported %s\n", options.output.c_str());
    return 0;
  }

  onnx::ModelWriter writer(options.opset, QTOOL_VERSION);
  const std::string dim_param = "batch";
  std::vector<int64_t> in_dims{options.batch > 0 ? options.batch : -1};
  in_dims.insert(in_dims.end(), m.sample_shape.begin(), m.sample_shape.end());
  writer.add_input("input", in_dims, dim_param);
  writer.add_output("logits", {options.batch > 0 ? options.batch : -1, m.num_classes}, dim_param);
  writer.add_metadata("qtool.checkpoint", fs::path(checkpoint).filename().string());
  writer.add_metadata("qtool.epoch", std::to_string(m.epoch));
  writer.add_metadata("qtool.resolved_toml", m.resolved_toml);

  Translator tr(writer, hooks, std::move(param_names));
  tr.bind(graph->inputs()[0], "input");
  for (const Node* n : graph->nodes()) tr.translate(n);
  writer.add_node("Identity", {tr.name_of(graph->outputs()[0])}, {"logits"});
  writer.write(options.output);
  spdlog::info("export: {} -> {} (opset {}, {} nodes; {} quantized weights, {} quantized activations, {} of them "
               "as thresholds)",
               checkpoint, options.output, options.opset, writer.node_count(), hooks.weight_count(),
               tr.qdq_count() + hooks.level_activation_count(), hooks.level_activation_count());

  if (!options.reference.empty()) {
    // qhost's own (fake-quantized) logits, after the trace: the trace did not
    // run the quantizers, so their counters are where the checkpoint left them.
    torch::NoGradGuard no_grad;
    torch::manual_seed(options.reference_seed);
    std::vector<int64_t> shape{options.reference_batch};
    shape.insert(shape.end(), m.sample_shape.begin(), m.sample_shape.end());
    torch::Tensor x = torch::randn(shape);
    torch::Tensor logits = m.model->forward(x);
    write_npy(options.reference + ".input.npy", x);
    write_npy(options.reference + ".logits.npy", logits.to(torch::kFloat));
    spdlog::info("export: reference batch {} and its logits written to {}.{{input,logits}}.npy", shape[0],
                 options.reference);
  }
  std::printf("exported %s\n", options.output.c_str());
  return 0;
}

}  // namespace qhost
