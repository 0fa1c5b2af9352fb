// Reading the integer model back (docs/integer-model.md#evaluation). An
// integer model is as untrusted as a checkpoint: the checkpoint reader walks
// it (links, storage, NaN in /model), every /integer entry is vetted against
// the rebuilt model before a byte is read, and the decoded weights are
// checked for exact sizes before they are used.
//
// Why hooks rather than the quantizers: a weight quantizer applied to its own
// output is not the identity for every method (DoReFa's tanh normalisation),
// so the decoded weights are used as they are, and activations go through the
// stored integer forms, exactly what the ONNX export computes.
#include "checkpoint/integer_model.hpp"

#include "checkpoint/bit_pack.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <functional>
#include <map>
#include <numeric>
#include <set>

namespace qhost {
namespace {

using qsdk::ErrorCategory;

const char* const kDamaged = "the integer model is damaged or was not written by qhost export --format qtool";

struct ActivationForm {
  torch::Tensor scale;  // float32 [1] or [C]
  int64_t zero_point = 0, qmin = 0, qmax = 0, axis = 1;
  // Threshold form (defined thresholds): float32 [L - 1] / [L] or [C, L - 1] / [C, L].
  torch::Tensor thresholds, levels;
  bool upper_at_ties = false;
};

/// y = levels[0], then for each threshold y = where(x passes t_i, levels[i + 1], y):
/// the last threshold passed decides, as qsdk::LevelActivationExport defines
/// and the ONNX export computes (onnx_export.cpp, Hooks::level_activation).
torch::Tensor apply_thresholds(const ActivationForm& f, const torch::Tensor& x, int64_t axis) {
  std::vector<int64_t> bshape;  // empty: one table for all channels
  if (f.thresholds.dim() == 2) {
    bshape.assign(static_cast<size_t>(x.dim()), 1);
    bshape[static_cast<size_t>(axis)] = x.size(axis);
  }
  auto column = [&](const torch::Tensor& t, int64_t i) {
    return t.select(-1, i).reshape(bshape).to(x.device(), x.scalar_type());
  };
  torch::Tensor y = column(f.levels, 0);
  for (int64_t i = 0; i < f.thresholds.size(-1); ++i) {
    const torch::Tensor t = column(f.thresholds, i), next = column(f.levels, i + 1);
    y = f.upper_at_ties ? at::where(at::lt(x, t), y, next) : at::where(at::gt(x, t), next, y);
  }
  return y;
}

class IntegerHooks : public ExportHooks {
 public:
  IntegerHooks(std::string file, std::map<std::string, torch::Tensor> weights,
               std::map<std::string, ActivationForm> values, std::set<const qsdk::QuantizerImpl*> pad_first)
      : file_(std::move(file)),
        weights_(std::move(weights)),
        values_(std::move(values)),
        pad_first_(std::move(pad_first)) {}

  torch::Tensor weight(const std::string& path, qsdk::QuantizerImpl&, const std::function<torch::Tensor()>&,
                       torch::IntArrayRef shape) override {
    // The layer's own parameter, which holds the decoded weight (and follows the model to its device).
    auto it = weights_.find(path);
    if (it == weights_.end() || it->second.sizes() != shape)
      throw qsdk::Error(ErrorCategory::runtime, file_ + ":/integer/" + path + "/weight",
                        "no decoded weight of the layer's shape (a qhost bug)");
    return it->second;
  }

  torch::Tensor activation(const std::string& path, qsdk::QuantTarget target, qsdk::QuantizerImpl&,
                           const torch::Tensor& x, int64_t axis) override {
    const std::string key = path + "/" + qsdk::to_string(target);
    auto it = values_.find(key);
    const std::string where = file_ + ":/integer/" + key;
    if (it == values_.end())
      throw qsdk::Error(ErrorCategory::runtime, where, "no stored integer form for this quantizer (a qhost bug)");
    const ActivationForm& f = it->second;
    if (f.thresholds.defined()) {
      if (f.axis != axis || (f.thresholds.dim() == 2 && f.thresholds.size(0) != x.size(axis)))
        throw qsdk::Error(ErrorCategory::checkpoint, where,
                          "the stored thresholds (" + std::to_string(f.thresholds.dim() == 2 ? f.thresholds.size(0) : 1) +
                              " rows along axis " + std::to_string(f.axis) + ") do not fit the layer's tensor",
                          kDamaged);
      return apply_thresholds(f, x, axis);
    }
    if (f.axis != axis || (f.scale.numel() != 1 && f.scale.numel() != x.size(axis)))
      throw qsdk::Error(ErrorCategory::checkpoint, where,
                        "the stored scale (" + std::to_string(f.scale.numel()) + " values along axis " +
                            std::to_string(f.axis) + ") does not fit the layer's tensor",
                        kDamaged);
    if (f.scale.numel() == 1)
      return at::fake_quantize_per_tensor_affine(x, f.scale.item<double>(), f.zero_point, f.qmin, f.qmax);
    const torch::Tensor scale = f.scale.to(x.device());
    return at::fake_quantize_per_channel_affine(x, scale, torch::full_like(scale, f.zero_point, torch::kInt), axis,
                                                f.qmin, f.qmax);
  }

  // A threshold form need not map 0 to 0 (XNOR sends it to +1), so the
  // convolution pads before it, as the checkpoint's evaluation does; an
  // affine form maps 0 to 0 and either order is exact.
  bool pads_first(qsdk::QuantizerImpl& quantizer) const override { return pad_first_.count(&quantizer) != 0; }

 private:
  std::string file_;
  std::map<std::string, torch::Tensor> weights_;
  std::map<std::string, ActivationForm> values_;
  std::set<const qsdk::QuantizerImpl*> pad_first_;  // activation quantizers stored as threshold forms
};

/// What the rebuilt model allows under /integer/<layer>.
struct LayerLimits {
  std::vector<int64_t> weight_shape;
  bool weight = false, activation = false, output = false;
};

/// Largest per-channel table: the largest dimension of the weight.
int64_t max_dim(const std::vector<int64_t>& s) {
  int64_t m = 1;
  for (int64_t d : s) m = std::max(m, d);
  return m;
}

bool is_scalar_int(const std::vector<int64_t>& sizes, torch::ScalarType t) {
  int64_t n = 1;
  for (int64_t d : sizes) n *= d;
  return n == 1 && sizes.size() <= 1 && t == torch::kLong;
}

/// Vets one /integer entry (path below the group) before any data is read.
void vet(const std::map<std::string, LayerLimits>& limits, const std::string& file, const std::string& rel,
         const std::vector<int64_t>& sizes, torch::ScalarType dtype) {
  const std::string where = file + ":/integer/" + rel;
  auto refuse = [&](const std::string& why) { throw qsdk::Error(ErrorCategory::checkpoint, where, why, kDamaged); };
  const auto s1 = rel.find('/'), s2 = rel.find('/', s1 == std::string::npos ? s1 : s1 + 1);
  if (s1 == std::string::npos || s2 == std::string::npos || rel.find('/', s2 + 1) != std::string::npos)
    refuse("is not an entry <layer>/<weight|activation|output|bn>/<name>");
  const std::string layer = rel.substr(0, s1), slot = rel.substr(s1 + 1, s2 - s1 - 1), name = rel.substr(s2 + 1);
  auto it = limits.find(layer);
  if (it == limits.end()) refuse("names a layer '" + layer + "' the model has no quantized layer for");
  const LayerLimits& l = it->second;
  const bool is_float = dtype == torch::kFloat;
  const bool vector = sizes.size() == 1;
  const int64_t n = vector ? sizes[0] : -1;
  const int64_t numel =
      std::accumulate(l.weight_shape.begin(), l.weight_shape.end(), int64_t{1}, std::multiplies<>());
  if (slot == "weight") {
    if (!l.weight) refuse("is a weight entry of a layer whose weight the model does not quantize");
    if (name == "codes") {
      if (dtype != torch::kByte || !vector || n > packed_bytes(numel, kMaxPackedBits))
        refuse("must be uint8 [bytes] of at most the layer's codes at 16 bits");
    } else if (name == "shape") {
      if (dtype != torch::kLong || !vector || n != static_cast<int64_t>(l.weight_shape.size()))
        refuse("must be int64 [" + std::to_string(l.weight_shape.size()) + "] (the layer's weight rank)");
    } else if (name == "bits" || name == "offset" || name == "stride" || name == "axis") {
      if (!is_scalar_int(sizes, dtype)) refuse("must be an int64 scalar");
    } else if (name == "scale") {
      if (!is_float || !vector || n < 1 || n > max_dim(l.weight_shape))
        refuse("must be float32 [1] or [channels]");
    } else if (name == "levels") {
      if (!is_float || sizes.empty() || sizes.size() > 2 || sizes.back() > 256 ||
          (sizes.size() == 2 && sizes[0] > max_dim(l.weight_shape)))
        refuse("must be float32 [2^bits] or [channels, 2^bits] with bits <= 8");
    } else {
      refuse("is not an entry of a quantized weight");
    }
  } else if (slot == "activation" || slot == "output") {
    if (!(slot == "activation" ? l.activation : l.output))
      refuse("is an entry of a quantizer the model does not have at this layer");
    if (name == "scale") {
      if (!is_float || !vector || n < 1 || n > (int64_t{1} << 16)) refuse("must be float32 [1] or [channels]");
    } else if (name == "thresholds" || name == "levels") {
      if (!is_float || sizes.empty() || sizes.size() > 2 || sizes.back() < 1 || sizes.back() > 256 ||
          (sizes.size() == 2 && (sizes[0] < 1 || sizes[0] > (int64_t{1} << 16))))
        refuse("must be float32 [L] or [channels, L] with at most 256 levels");
    } else if (name == "zero_point" || name == "qmin" || name == "qmax" || name == "axis" || name == "upper_at_ties") {
      if (!is_scalar_int(sizes, dtype)) refuse("must be an int64 scalar");
    } else {
      refuse("is not an entry of an activation quantizer");
    }
  } else if (slot == "bn") {
    if (name != "scale" && name != "shift") refuse("is not an entry of a folded batch norm");
    if (!is_float || !vector || l.weight_shape.empty() || n != l.weight_shape[0])
      refuse("must be float32 [output channels]");
  } else {
    refuse("has an unknown part '" + slot + "'");
  }
}

/// The /integer entries of one file, by path, with checked access.
class Entries {
 public:
  Entries(std::string file, const NamedTensors& data) : file_(std::move(file)) {
    for (const auto& [k, v] : data) map_[k] = v;
  }
  bool has(const std::string& rel) const { return map_.count(rel) != 0; }
  const torch::Tensor& get(const std::string& rel) const {
    auto it = map_.find(rel);
    if (it == map_.end()) throw qsdk::Error(ErrorCategory::checkpoint, where(rel), "missing", kDamaged);
    return it->second;
  }
  int64_t integer(const std::string& rel, int64_t lo, int64_t hi) const {
    const int64_t v = get(rel).reshape({-1})[0].item<int64_t>();
    if (v < lo || v > hi)
      fail(rel, "is " + std::to_string(v) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  /// A float entry that must hold only finite values.
  const torch::Tensor& finite(const std::string& rel) const {
    const torch::Tensor& t = get(rel);
    if (!torch::isfinite(t).all().item<bool>()) fail(rel, "holds NaN or infinite values");
    return t;
  }
  std::string where(const std::string& rel) const { return file_ + ":/integer/" + rel; }
  [[noreturn]] void fail(const std::string& rel, const std::string& why) const {
    throw qsdk::Error(ErrorCategory::checkpoint, where(rel), why, kDamaged);
  }

 private:
  std::string file_;
  std::map<std::string, torch::Tensor> map_;
};

/// The float weight of one layer from its codes (docs/integer-model.md#weights).
torch::Tensor decode_weight(const Entries& e, const std::string& layer, const std::vector<int64_t>& shape) {
  const std::string dir = layer + "/weight/";
  const torch::Tensor stored_shape = e.get(dir + "shape");
  if (std::vector<int64_t>(stored_shape.data_ptr<int64_t>(), stored_shape.data_ptr<int64_t>() + stored_shape.numel()) !=
      shape)
    e.fail(dir + "shape", "is not the layer's weight shape " + c10::str(torch::IntArrayRef(shape)));
  const int64_t bits = e.integer(dir + "bits", 1, kMaxPackedBits);
  const int64_t offset = e.integer(dir + "offset", -(int64_t{1} << 31), int64_t{1} << 31);
  const int64_t stride = e.integer(dir + "stride", 1, int64_t{1} << 31);
  const int64_t axis = e.integer(dir + "axis", 0, static_cast<int64_t>(shape.size()) - 1);
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  const torch::Tensor& packed = e.get(dir + "codes");
  const int64_t need = packed_bytes(count, bits);
  if (packed.numel() != need)
    e.fail(dir + "codes", "holds " + std::to_string(packed.numel()) + " bytes; " + std::to_string(count) +
                              " codes of " + std::to_string(bits) + " bits need " + std::to_string(need) +
                              " (truncated or corrupt)");
  // The unused high bits of the last byte are written as 0; anything else is damage.
  const int64_t used = (count * bits) % 8;
  if (used != 0 && (packed[need - 1].item<int64_t>() >> used) != 0)
    e.fail(dir + "codes", "has bits set past its last code (corrupt)");
  const torch::Tensor u = unpack_codes(packed, count, bits);
  const bool has_scale = e.has(dir + "scale"), has_levels = e.has(dir + "levels");
  if (has_scale == has_levels) e.fail(dir, "must hold exactly one of 'scale' and 'levels'");
  std::vector<int64_t> bshape(shape.size(), 1);
  if (has_levels) {
    const torch::Tensor& levels = e.finite(dir + "levels");
    if (levels.size(-1) != (int64_t{1} << bits))
      e.fail(dir + "levels", "has " + std::to_string(levels.size(-1)) + " levels per table, not 2^bits = " +
                                 std::to_string(int64_t{1} << bits));
    if (levels.dim() == 1) return levels.index_select(0, u).reshape(shape);
    if (levels.size(0) != shape[axis])
      e.fail(dir + "levels", "has " + std::to_string(levels.size(0)) + " tables, the weight's axis " +
                                 std::to_string(axis) + " has " + std::to_string(shape[axis]));
    // Row of each element: its index along `axis` in the row-major order.
    bshape[axis] = shape[axis];
    const torch::Tensor row = torch::arange(shape[axis]).reshape(bshape).expand(shape).reshape({-1});
    return levels.reshape({-1}).index_select(0, row * levels.size(1) + u).reshape(shape);
  }
  const torch::Tensor& scale = e.finite(dir + "scale");
  if (scale.numel() != 1 && scale.numel() != shape[axis])
    e.fail(dir + "scale", "has " + std::to_string(scale.numel()) + " values, neither 1 nor the " +
                              std::to_string(shape[axis]) + " of the weight's axis " + std::to_string(axis));
  if (scale.numel() != 1) bshape[axis] = scale.numel();
  return (u * stride + offset).to(torch::kFloat).reshape(shape) * scale.reshape(bshape);
}

ActivationForm read_activation(const Entries& e, const std::string& key, int64_t version) {
  const std::string dir = key + "/";
  ActivationForm f;
  if (e.has(dir + "thresholds") || e.has(dir + "levels") || e.has(dir + "upper_at_ties")) {
    if (version < kIntegerModelThresholdVersion)
      e.fail(dir + "thresholds", "is a threshold form in a file of layout " + std::to_string(version) +
                                     ", which has none (it came with layout " +
                                     std::to_string(kIntegerModelThresholdVersion) + ")");
    if (e.has(dir + "scale")) e.fail(key, "must hold exactly one of 'scale' and 'thresholds'");
    f.thresholds = e.get(dir + "thresholds").contiguous();
    f.levels = e.finite(dir + "levels").contiguous();
    // A threshold may be infinite (a level never reached), never NaN: no comparison would hold.
    if (torch::isnan(f.thresholds).any().item<bool>()) e.fail(dir + "thresholds", "holds NaN");
    const torch::Tensor &t = f.thresholds, &l = f.levels;
    if (t.dim() != l.dim() || l.size(-1) < 2 || t.size(-1) != l.size(-1) - 1 || (t.dim() == 2 && t.size(0) != l.size(0)))
      e.fail(dir + "thresholds", "has " + c10::str(t.sizes()) + " thresholds for levels " + c10::str(l.sizes()) +
                                     "; the form needs [L - 1] and [L] or [C, L - 1] and [C, L]");
    f.upper_at_ties = e.integer(dir + "upper_at_ties", 0, 1) == 1;
    f.axis = e.integer(dir + "axis", 0, 7);
    return f;
  }
  f.scale = e.finite(dir + "scale").contiguous();
  if (!(f.scale > 0).all().item<bool>()) e.fail(dir + "scale", "holds a scale that is not positive");
  const int64_t big = int64_t{1} << 31;
  f.qmin = e.integer(dir + "qmin", -big, big - 1);
  f.qmax = e.integer(dir + "qmax", f.qmin, big - 1);
  f.zero_point = e.integer(dir + "zero_point", f.qmin, f.qmax);
  f.axis = e.integer(dir + "axis", 0, 7);
  return f;
}

}  // namespace

std::shared_ptr<ExportHooks> load_integer_model(torch::nn::Module& model, const std::vector<LayerRecord>& layers,
                                                const std::string& path, bool allow_nonfinite) {
  const auto weight_names = layer_weight_names(model);
  std::map<std::string, torch::Tensor> params;
  for (const auto& item : model.named_parameters(true)) params[item.key()] = item.value();
  std::map<std::string, LayerLimits> limits;
  CheckpointReadOptions ro;
  for (const auto& r : layers) {
    if (!r.weight.active() && !r.activation.active() && !r.output.active()) continue;
    auto wn = weight_names.find(r.path);
    if (wn == weight_names.end() || params.count(wn->second) == 0)
      throw qsdk::Error(ErrorCategory::runtime, r.path, "quantized layer not found in the model (a qhost bug)");
    LayerLimits& l = limits[r.path];
    l.weight_shape = params[wn->second].sizes().vec();
    l.weight = r.weight.active();
    l.activation = r.activation.active();
    l.output = r.output.active();
    if (l.weight) ro.absent.insert(wn->second);
  }
  ro.model = &model;
  ro.read_optimizer = false;
  ro.allow_nonfinite = allow_nonfinite;
  ro.read_integer = true;
  ro.check_integer = [&](const std::string& rel, const std::vector<int64_t>& sizes, torch::ScalarType dtype) {
    vet(limits, path, rel, sizes, dtype);
  };
  CheckpointData data = read_checkpoint(path, ro);
  if (data.meta.content_version < 1 || data.meta.content_version > kIntegerModelVersion)
    throw qsdk::Error(ErrorCategory::checkpoint, path + ":/meta/content_version",
                      "integer model layout " + std::to_string(data.meta.content_version) + ", this qhost reads " +
                          std::to_string(kIntegerModelVersion),
                      "use the qhost version that wrote it (" + data.meta.qtool_version + ")");
  const Entries entries(path, data.integer);

  std::map<std::string, ActivationForm> values;
  std::vector<std::pair<std::string, std::string>> decoded;  // (layer, parameter name)
  for (const auto& [layer, l] : limits) {
    if (l.weight) {
      data.model.emplace_back(weight_names.at(layer), decode_weight(entries, layer, l.weight_shape));
      decoded.emplace_back(layer, weight_names.at(layer));
    }
    const int64_t version = data.meta.content_version;
    if (l.activation) values[layer + "/activation"] = read_activation(entries, layer + "/activation", version);
    if (l.output) values[layer + "/output"] = read_activation(entries, layer + "/output", version);
    if (entries.has(layer + "/bn/scale") || entries.has(layer + "/bn/shift")) {
      entries.finite(layer + "/bn/scale");
      entries.finite(layer + "/bn/shift");
    }
  }
  load_module_state(model, data.model, path);
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [layer, name] : decoded) weights[layer] = params.at(name);
  // The input quantizers of convolutions stored as threshold forms (IntegerHooks::pads_first).
  std::set<const qsdk::QuantizerImpl*> pad_first;
  for (const auto& item : model.named_modules("", /*include_self=*/true))
    if (const auto* conv = dynamic_cast<const QuantConv2dImpl*>(item.value().get())) {
      auto v = values.find(conv->module_path() + "/activation");
      if (conv->quantizers().activation && v != values.end() && v->second.thresholds.defined())
        pad_first.insert(conv->quantizers().activation.get());
    }
  return std::make_shared<IntegerHooks>(path, std::move(weights), std::move(values), std::move(pad_first));
}

}  // namespace qhost
