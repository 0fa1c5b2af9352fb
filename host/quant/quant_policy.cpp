// `[quant]`: parsing the policy, resolving a layer's quantizers, schedule keys.
#include "quant/quant_policy.hpp"

#include "platform/errors.hpp"

#include <qsdk/error.hpp>

#include <fnmatch.h>

#include <algorithm>
#include <charconv>

namespace qhost {
namespace {

using qsdk::LayerRole;
using qsdk::QuantTarget;
using qsdk::Table;
using qsdk::Value;

[[noreturn]] void bad(const std::string& key, const std::string& message, const std::string& hint = "") {
  throw qsdk::Error(qsdk::ErrorCategory::config, key, message, hint);
}

std::vector<std::string> string_list(const Value& v, const std::string& key) {
  std::vector<std::string> out;
  if (v.type() == Value::Type::string) return {v.as_string()};
  if (v.type() != Value::Type::list) bad(key, "must be a list of strings");
  for (const auto& e : v.as_list()) {
    if (e.type() != Value::Type::string) bad(key, "must be a list of strings");
    out.push_back(e.as_string());
  }
  return out;
}

bool is_none_string(const Value& v) { return v.type() == Value::Type::string && v.as_string() == "none"; }

std::string type_of(const Table& t) {
  auto it = t.find("type");
  return it != t.end() && it->second.type() == Value::Type::string ? it->second.as_string() : "";
}

// A default's entry: absent or "none" (nullopt), or a table with `type`.
QuantizerChoice default_entry(const Value& v, const std::string& key) {
  if (v.is_none() || is_none_string(v)) return std::nullopt;
  if (v.type() != Value::Type::table)
    bad(key, "must be \"none\" or a quantizer table", "e.g. { type = \"lsq\", bits = 2 }");
  const auto type = type_of(v.as_table());
  if (type == "none") return std::nullopt;
  if (type.empty()) bad(key, "has no `type`", "add type = \"<quantizer name>\" or use \"none\"");
  return v.as_table();
}

// An override's entry for one target: "none", a table with `type` (replaces),
// or a table without (merged onto the default).
OverrideChoice override_entry(const Value& v, const std::string& key, const QuantizerChoice& def,
                              const std::string& target) {
  OverrideChoice out;
  if (is_none_string(v)) return out;
  if (v.type() != Value::Type::table) bad(key, "must be \"none\" or a quantizer table");
  const Table& t = v.as_table();
  const auto type = type_of(t);
  if (type == "none") return out;
  if (!type.empty()) {
    out.choice = t;
    return out;
  }
  if (!def)
    bad(key, "has no `type` and there is no [quant." + target + "] default to merge it onto",
        "give the override a type = \"...\"");
  Table merged = *def;
  for (const auto& [k, x] : t) {
    merged[k] = x;
    out.written.push_back(k);
  }
  out.choice = std::move(merged);
  out.merged_onto_default = true;
  return out;
}

QuantOverride parse_override(const Value& v, const std::string& key, const QuantPolicy& p) {
  if (v.type() != Value::Type::table) bad(key, "must be a table");
  QuantOverride o;
  for (const auto& [name, value] : v.as_table()) {
    if (name == "match") {
      if (value.type() != Value::Type::table) bad(key + ".match", "must be a table { role = [...], path = [...] }");
      for (const auto& [mk, mv] : value.as_table()) {
        if (mk == "role") {
          for (const auto& r : string_list(mv, key + ".match.role")) {
            auto role = qsdk::layer_role_from_string(r);
            if (!role) bad(key + ".match.role", "unknown role '" + r + "'", "roles are stem, body, shortcut, head");
            o.roles.push_back(*role);
          }
        } else if (mk == "path") {
          o.paths = string_list(mv, key + ".match.path");
        } else {
          bad(key + ".match." + mk, "unknown key", "match has `role` and `path`");
        }
      }
    } else if (auto target = qsdk::quant_target_from_string(name)) {
      o.at(*target) = override_entry(value, key + "." + name, p.default_for(*target), name);
    } else {
      bad(key + "." + name, "unknown key", "an override has match, weight, activation, output");
    }
  }
  return o;
}

}  // namespace

const std::optional<OverrideChoice>& QuantOverride::at(QuantTarget target) const {
  return target == QuantTarget::weight ? weight : target == QuantTarget::activation ? activation : output;
}

std::optional<OverrideChoice>& QuantOverride::at(QuantTarget target) {
  return target == QuantTarget::weight ? weight : target == QuantTarget::activation ? activation : output;
}

bool QuantOverride::matches(const std::string& path, LayerRole role) const {
  if (!roles.empty() && std::find(roles.begin(), roles.end(), role) == roles.end()) return false;
  if (paths.empty()) return true;
  return std::any_of(paths.begin(), paths.end(),
                     [&](const std::string& glob) { return fnmatch(glob.c_str(), path.c_str(), 0) == 0; });
}

QuantKey::Parsed QuantKey::parse(const std::string& key) {
  Parsed out;
  const std::string dotted = "quant." + key;
  const auto last = key.rfind('.');
  if (last == std::string::npos) {
    out.message = "'" + dotted + "' names no quantizer option";
    out.hint = "write \"quant.<weight|activation|output>.<option>\" = value, e.g. \"quant.activation.bits\" = 2";
    return out;
  }
  QuantKey k;
  k.option = key.substr(last + 1);
  std::string target = key.substr(0, last);
  if (target.rfind("override[", 0) == 0) {
    const auto close = target.find("].");
    if (close == std::string::npos) {
      out.message = "'" + dotted + "' is not a quantizer option";
      out.hint = "write \"quant.override[i].<target>.<option>\"";
      return out;
    }
    const std::string index = target.substr(9, close - 9);
    const auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), k.override_index);
    if (ec != std::errc() || end != index.data() + index.size() || index.empty() || k.override_index < 0) {
      out.message = "there is no [[quant.override]] entry " + index;
      out.hint = "entries are numbered from 0 in file order";
      return out;
    }
    target = target.substr(close + 2);
  }
  auto t = qsdk::quant_target_from_string(target);
  if (!t) {
    std::vector<std::string> names;
    for (QuantTarget x : qsdk::kAllQuantTargets) names.push_back(qsdk::to_string(x));
    out.message = "'" + target + "' is not a quantized tensor";
    out.hint = did_you_mean(target, names);
    if (out.hint.empty())
      out.hint = "write \"quant.<weight|activation|output>.<option>\" = value, e.g. \"quant.activation.bits\" = 2";
    return out;
  }
  k.target = *t;
  out.key = std::move(k);
  return out;
}

std::string QuantKey::str() const {
  return (override_index >= 0 ? "override[" + std::to_string(override_index) + "]." : std::string()) +
         qsdk::to_string(target) + "." + option;
}

QuantPolicy QuantPolicy::from_table(const Table& quant) {
  QuantPolicy p;
  auto flag = [&](const char* name, bool& out) {
    auto it = quant.find(name);
    if (it == quant.end() || it->second.is_none()) return;
    if (it->second.type() != Value::Type::boolean) bad(std::string("quant.") + name, "must be a boolean");
    out = it->second.as_bool();
  };
  flag("padding_after_quant", p.padding_after_quant);
  flag("real_skip", p.real_skip);
  flag("quantize_stem", p.quantize_stem);
  flag("quantize_head", p.quantize_head);
  for (QuantTarget target : qsdk::kAllQuantTargets) {
    const std::string name = qsdk::to_string(target);
    auto it = quant.find(name);
    if (it != quant.end()) p.default_for(target) = default_entry(it->second, "quant." + name);
  }
  auto ov = quant.find("override");
  if (ov == quant.end() || ov->second.is_none()) return p;
  if (ov->second.type() != Value::Type::list) bad("quant.override", "must be an array of tables ([[quant.override]])");
  const auto& list = ov->second.as_list();
  for (size_t i = 0; i < list.size(); ++i)
    p.overrides.push_back(parse_override(list[i], "quant.override[" + std::to_string(i) + "]", p));
  return p;
}

const QuantizerChoice& QuantPolicy::default_for(QuantTarget target) const {
  return target == QuantTarget::weight ? weight : target == QuantTarget::activation ? activation : output;
}

QuantizerChoice& QuantPolicy::default_for(QuantTarget target) {
  return target == QuantTarget::weight ? weight : target == QuantTarget::activation ? activation : output;
}

QuantizerChoice QuantPolicy::resolve(const std::string& path, LayerRole role, QuantTarget target) const {
  QuantizerChoice current = default_for(target);
  if ((role == LayerRole::stem && !quantize_stem) || (role == LayerRole::head && !quantize_head) ||
      (role == LayerRole::shortcut && real_skip))
    current.reset();
  for (const auto& o : overrides)
    if (o.at(target) && o.matches(path, role)) current = o.at(target)->choice;
  return current;
}

Value QuantPolicy::set_option(const QuantKey& key, const Value& value) {
  const std::string place = "quant." + key.str();
  QuantizerChoice* table = nullptr;
  if (key.override_index < 0) {
    table = &default_for(key.target);
  } else {
    if (key.override_index >= static_cast<int64_t>(overrides.size()))
      throw qsdk::Error(qsdk::ErrorCategory::runtime, place,
                        "no entry " + std::to_string(key.override_index) + " in quant.override");
    auto& entry = overrides[static_cast<size_t>(key.override_index)].at(key.target);
    if (entry) table = &entry->choice;
  }
  if (!table || !*table)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, place, "does not name an option of a quantizer table");
  Value old = (*table)->count(key.option) ? (*table)->at(key.option) : Value();
  (**table)[key.option] = value;
  return old;
}

}  // namespace qhost
