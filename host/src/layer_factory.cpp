#include <torch/torch.h>

#include "layer_factory.hpp"

#include <qsdk/error.hpp>

#include <fnmatch.h>

#include <algorithm>

namespace qhost {
namespace {

[[noreturn]] void bad(const std::string& key, const std::string& message, const std::string& hint = "") {
  throw qsdk::Error(qsdk::ErrorCategory::config, key, message, hint);
}

std::vector<std::string> string_list(const qsdk::Value& v, const std::string& key) {
  std::vector<std::string> out;
  if (v.type() == qsdk::Value::Type::string) return {v.as_string()};
  if (v.type() != qsdk::Value::Type::list) bad(key, "must be a list of strings");
  for (const auto& e : v.as_list()) {
    if (e.type() != qsdk::Value::Type::string) bad(key, "must be a list of strings");
    out.push_back(e.as_string());
  }
  return out;
}

bool is_none_string(const qsdk::Value& v) {
  return v.type() == qsdk::Value::Type::string && v.as_string() == "none";
}

std::string type_of(const qsdk::Table& t) {
  auto it = t.find("type");
  return it != t.end() && it->second.type() == qsdk::Value::Type::string ? it->second.as_string() : "";
}

// A quantizer entry: absent, "none", or a table. Returns nullopt for "none" /
// `type = "none"`, the table otherwise.
std::optional<qsdk::Table> quantizer_entry(const qsdk::Value& v, const std::string& key) {
  if (v.is_none() || is_none_string(v)) return std::nullopt;
  if (v.type() != qsdk::Value::Type::table)
    bad(key, "must be \"none\" or a quantizer table", "e.g. { type = \"lsq\", bits = 2 }");
  if (type_of(v.as_table()) == "none") return std::nullopt;
  return v.as_table();
}

const char* const kTargets[] = {"weight", "activation", "output"};

const char* target_key(qsdk::QuantTarget t) {
  switch (t) {
    case qsdk::QuantTarget::weight: return "weight";
    case qsdk::QuantTarget::activation: return "activation";
    case qsdk::QuantTarget::output: return "output";
  }
  return "weight";
}

}  // namespace

std::string QuantSlot::str() const {
  if (!active()) return "none";
  std::string s = type;
  if (bits > 0) s += "/" + std::to_string(bits) + "b";
  else if (levels > 0) s += "/" + std::to_string(levels) + "L";
  return s;
}

std::string LayerRecord::str() const {
  return std::to_string(index) + " " + path + " " + role + " " + kind + " w=" + weight.str() +
         " a=" + activation.str() + " o=" + output.str();
}

bool QuantOverride::matches(const std::string& path, const std::string& role) const {
  if (!roles.empty() && std::find(roles.begin(), roles.end(), role) == roles.end()) return false;
  if (paths.empty()) return true;
  return std::any_of(paths.begin(), paths.end(),
                     [&](const std::string& glob) { return fnmatch(glob.c_str(), path.c_str(), 0) == 0; });
}

QuantPolicy QuantPolicy::from_table(const qsdk::Table& quant) {
  QuantPolicy p;
  auto flag = [&](const char* name, bool& out) {
    auto it = quant.find(name);
    if (it == quant.end() || it->second.is_none()) return;
    if (it->second.type() != qsdk::Value::Type::boolean) bad(std::string("quant.") + name, "must be a boolean");
    out = it->second.as_bool();
  };
  flag("padding_after_quant", p.padding_after_quant);
  flag("real_skip", p.real_skip);
  flag("quantize_stem", p.quantize_stem);
  flag("quantize_head", p.quantize_head);
  for (const char* target : kTargets) {
    auto it = quant.find(target);
    if (it == quant.end()) continue;
    auto entry = quantizer_entry(it->second, std::string("quant.") + target);
    if (entry && type_of(*entry).empty())
      bad(std::string("quant.") + target, "has no `type`", "add type = \"<quantizer name>\" or use \"none\"");
    (target == std::string("weight") ? p.weight : target == std::string("activation") ? p.activation : p.output) =
        entry;
  }
  auto ov = quant.find("override");
  if (ov == quant.end() || ov->second.is_none()) return p;
  if (ov->second.type() != qsdk::Value::Type::list) bad("quant.override", "must be an array of tables ([[quant.override]])");
  const auto& list = ov->second.as_list();
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string key = "quant.override[" + std::to_string(i) + "]";
    if (list[i].type() != qsdk::Value::Type::table) bad(key, "must be a table");
    const auto& t = list[i].as_table();
    QuantOverride o;
    for (const auto& [name, value] : t) {
      if (name == "match") {
        if (value.type() != qsdk::Value::Type::table) bad(key + ".match", "must be a table { role = [...], path = [...] }");
        for (const auto& [mk, mv] : value.as_table()) {
          if (mk == "role") {
            o.roles = string_list(mv, key + ".match.role");
            for (const auto& r : o.roles)
              if (r != "stem" && r != "body" && r != "shortcut" && r != "head")
                bad(key + ".match.role", "unknown role '" + r + "'", "roles are stem, body, shortcut, head");
          } else if (mk == "path") {
            o.paths = string_list(mv, key + ".match.path");
          } else {
            bad(key + ".match." + mk, "unknown key", "match has `role` and `path`");
          }
        }
      } else if (name == "weight" || name == "activation" || name == "output") {
        const std::string tkey = key + "." + name;
        if (!is_none_string(value) && value.type() != qsdk::Value::Type::table)
          bad(tkey, "must be \"none\" or a quantizer table");
        qsdk::Value stored = is_none_string(value) ? qsdk::Value() : value;
        if (!stored.is_none() && type_of(stored.as_table()).empty()) {
          const auto& def = name == "weight" ? p.weight : name == "activation" ? p.activation : p.output;
          if (!def)
            bad(tkey, "has no `type` and there is no [quant." + name + "] default to merge it onto",
                "give the override a type = \"...\"");
        }
        (name == "weight" ? o.weight : name == "activation" ? o.activation : o.output) = stored;
      } else {
        bad(key + "." + name, "unknown key", "an override has match, weight, activation, output");
      }
    }
    p.overrides.push_back(std::move(o));
  }
  return p;
}

std::optional<qsdk::Table> QuantPolicy::resolve(const std::string& path, qsdk::LayerRole role,
                                                qsdk::QuantTarget target) const {
  const auto& def = target == qsdk::QuantTarget::weight       ? weight
                    : target == qsdk::QuantTarget::activation ? activation
                                                              : output;
  std::optional<qsdk::Table> current = def;
  if ((role == qsdk::LayerRole::stem && !quantize_stem) || (role == qsdk::LayerRole::head && !quantize_head) ||
      (role == qsdk::LayerRole::shortcut && real_skip))
    current.reset();
  const std::string role_name = qsdk::to_string(role);
  for (const auto& o : overrides) {
    if (!o.matches(path, role_name)) continue;
    const auto& entry = target == qsdk::QuantTarget::weight       ? o.weight
                        : target == qsdk::QuantTarget::activation ? o.activation
                                                                  : o.output;
    if (!entry) continue;
    if (entry->is_none()) {
      current.reset();
      continue;
    }
    const auto& t = entry->as_table();
    if (!type_of(t).empty()) {
      current = type_of(t) == "none" ? std::nullopt : std::optional<qsdk::Table>(t);
      continue;
    }
    qsdk::Table merged = current ? *current : *def;  // from_table guarantees def exists here
    for (const auto& [k, v] : t) merged[k] = v;
    current = merged;
  }
  return current;
}

LayerFactory::LayerFactory(const qsdk::Table& quant, QuantizerMaker make_quantizer, int64_t batch_size,
                           int64_t input_size)
    : policy_(QuantPolicy::from_table(quant)),
      make_quantizer_(std::move(make_quantizer)),
      batch_size_(batch_size),
      input_size_(input_size),
      transforms_(std::make_shared<WeightTransforms>()) {
  if ((policy_.weight || policy_.activation || policy_.output || !policy_.overrides.empty()) && !make_quantizer_)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "quant", "layer factory has no quantizer maker");
}

void LayerFactory::add_weight_transform(WeightTransform transform) { transforms_->push_back(std::move(transform)); }

LayerQuantizers LayerFactory::make_quantizers(const std::string& path, qsdk::LayerRole role,
                                              const std::vector<int64_t>& weight_shape, int64_t in, int64_t out,
                                              LayerRecord& record) {
  LayerQuantizers q;
  auto make = [&](qsdk::QuantTarget target, std::vector<int64_t> shape, QuantSlot& slot) {
    auto table = policy_.resolve(path, role, target);
    if (!table) return std::shared_ptr<qsdk::QuantizerImpl>();
    qsdk::QuantizerContext ctx;
    ctx.target = target;
    ctx.shape = std::move(shape);
    ctx.module_path = path;
    ctx.role = qsdk::to_string(role);
    ctx.batch_size = batch_size_;
    ctx.input_size = input_size_;
    auto quantizer = make_quantizer_(*table, ctx);
    if (!quantizer)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, path,
                        std::string("quantizer maker returned nothing for the ") + target_key(target));
    slot.type = type_of(*table);
    auto bits = table->find("bits");
    if (bits != table->end() && bits->second.type() == qsdk::Value::Type::integer) slot.bits = bits->second.as_int();
    slot.levels = quantizer->num_levels();
    return quantizer;
  };
  q.weight = make(qsdk::QuantTarget::weight, weight_shape, record.weight);
  q.activation = make(qsdk::QuantTarget::activation, {1, in, 1, 1}, record.activation);
  q.output = make(qsdk::QuantTarget::output, {1, out, 1, 1}, record.output);
  return q;
}

std::shared_ptr<qsdk::Conv2dLayerImpl> LayerFactory::conv2d(const std::string& module_path, qsdk::LayerRole role,
                                                            const torch::nn::Conv2dOptions& options) {
  LayerRecord record;
  record.index = static_cast<int64_t>(records_.size());
  record.path = module_path;
  record.role = qsdk::to_string(role);
  record.kind = "conv2d";
  // docs/methods.md#groups-and-derived-quantities: the weight shape passes C_in (not C_in / groups).
  std::vector<int64_t> wshape{options.out_channels(), options.in_channels()};
  for (int64_t k : *options.kernel_size()) wshape.push_back(k);
  auto q = make_quantizers(module_path, role, wshape, options.in_channels(), options.out_channels(), record);
  auto layer = std::make_shared<QuantConv2dImpl>(module_path, options, std::move(q), policy_.padding_after_quant,
                                                 transforms_);
  records_.push_back(std::move(record));
  return layer;
}

std::shared_ptr<qsdk::LinearLayerImpl> LayerFactory::linear(const std::string& module_path, qsdk::LayerRole role,
                                                            const torch::nn::LinearOptions& options) {
  LayerRecord record;
  record.index = static_cast<int64_t>(records_.size());
  record.path = module_path;
  record.role = qsdk::to_string(role);
  record.kind = "linear";
  auto q = make_quantizers(module_path, role, {1, 1, options.out_features(), options.in_features()},
                           options.in_features(), options.out_features(), record);
  auto layer = std::make_shared<QuantLinearImpl>(module_path, options, std::move(q), transforms_);
  records_.push_back(std::move(record));
  return layer;
}

}  // namespace qhost
