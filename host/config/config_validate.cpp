// Validation of a Config against the host section schemas and the schemas of
// the components the plugins registered. Every problem is collected (never
// stop at the first) and the resolved tree is built alongside.
#include "config/config.hpp"
#include "platform/device.hpp"

#include "config/schedule_check.hpp"
#include "config/sections.hpp"
#include "platform/errors.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <tuple>

namespace fs = std::filesystem;

namespace qhost {

namespace {
using qsdk::FieldSpec;
using qsdk::FieldType;
using qsdk::Kind;
using qsdk::List;
using qsdk::SchemaInfo;
using qsdk::Table;
using qsdk::Value;

std::string type_name(Value::Type t) {
  switch (t) {
    case Value::Type::none: return "nothing";
    case Value::Type::boolean: return "bool";
    case Value::Type::integer: return "int";
    case Value::Type::floating: return "float";
    case Value::Type::string: return "string";
    case Value::Type::list: return "array";
    case Value::Type::table: return "table";
  }
  return "?";
}

std::string expected_name(FieldType t, FieldType element) {
  if (t == FieldType::list) return "list of " + expected_name(element, element);
  if (t == FieldType::enumeration) return "string";
  if (t == FieldType::component) return "table";
  return qsdk::to_string(t);
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return Value(v).to_string();
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const auto& i : items) q.push_back("\"" + i + "\"");
  return join(q);
}

std::string key_join(const std::string& prefix, const std::string& k) { return prefix.empty() ? k : prefix + "." + k; }

std::vector<std::string> field_names(const std::vector<const SchemaInfo*>& schemas) {
  std::vector<std::string> out;
  for (const auto* s : schemas)
    if (s)
      for (const auto& f : s->fields) out.push_back(f.name);
  return out;
}
}  // namespace

/// Collects problems while building the resolved tree.
class Validator {
 public:
  Validator(const Config& config, const Registry& registry, const PluginLoader* loader,
            const std::vector<std::string>& load_list)
      : config_(config), registry_(registry), loader_(loader), load_list_(load_list) {}

  std::vector<ConfigProblem> problems;

  void problem(const std::string& key, std::string message, std::string hint = "") {
    problems.push_back({config_.location(key), key, std::move(message), std::move(hint)});
  }

  // Checks one value against a field; returns the normalized value (or none
  // after a problem).
  Value field(const FieldSpec& f, const Value& v, const std::string& key, bool element = false) {
    FieldType t = element ? f.element : f.type;
    auto wrong_type = [&]() {
      std::string hint = f.default_value.is_none() ? f.doc : "the default is " + f.default_value.to_string();
      problem(key, "expected " + expected_name(t, f.element) + ", got " + type_name(v.type()) + " " + v.to_string(),
              hint);
      return Value();
    };
    auto range = [&](double x) {
      if (!f.in_range(x)) {
        std::string r = f.min && f.max   ? "outside " + f.range_text()
                        : f.min_exclusive ? "not above " + number(*f.min)
                        : f.min           ? "below the minimum " + number(*f.min)
                        : f.max_exclusive ? "not below " + number(*f.max)
                                          : "above the maximum " + number(*f.max);
        problem(key, v.to_string() + " is " + r, f.doc);
        return false;
      }
      return true;
    };
    switch (t) {
      case FieldType::boolean:
        if (v.type() != Value::Type::boolean) return wrong_type();
        return v;
      case FieldType::integer:
        if (v.type() != Value::Type::integer) return wrong_type();
        return range(static_cast<double>(v.as_int())) ? v : Value();
      case FieldType::floating:
        if (v.type() != Value::Type::integer && v.type() != Value::Type::floating) return wrong_type();
        // Comparisons with NaN are false, so NaN passed every range; no option
        // gives inf a meaning either (none is "unbounded" by default), so a
        // float option is always a finite number.
        if (!std::isfinite(v.as_double())) {
          std::string hint = f.doc;
          if (!f.default_value.is_none())
            hint += (hint.empty() ? "" : "; ") + std::string("the default is ") + f.default_value.to_string();
          problem(key, v.to_string() + " is not a finite number", hint);
          return Value();
        }
        return range(v.as_double()) ? Value(v.as_double()) : Value();
      case FieldType::string:
        if (v.type() != Value::Type::string) return wrong_type();
        // Paths: relative to the file that wrote them, never the current folder.
        if (f.path) return Value(config_.resolve_path(key, v.as_string()));
        return v;
      case FieldType::enumeration: {
        if (v.type() != Value::Type::string) return wrong_type();
        if (std::find(f.allowed.begin(), f.allowed.end(), v.as_string()) == f.allowed.end()) {
          std::string hint = did_you_mean(v.as_string(), f.allowed);
          problem(key, v.to_string() + " is not one of " + quoted_list(f.allowed), hint.empty() ? f.doc : hint);
          return Value();
        }
        return v;
      }
      case FieldType::list: {
        if (v.type() != Value::Type::list) return wrong_type();
        List out;
        bool ok = true;
        for (size_t i = 0; i < v.as_list().size(); ++i) {
          Value e = field(f, v.as_list()[i], key + "[" + std::to_string(i) + "]", true);
          ok = ok && !e.is_none();
          out.push_back(e);
        }
        return ok ? Value(std::move(out)) : Value();
      }
      case FieldType::component: {
        if (v.type() != Value::Type::table) return wrong_type();
        return component(f.component_kind, v.as_table(), key, nullptr);
      }
    }
    return v;
  }

  // Checks the keys of `table` against `schemas` (host keys first), fills
  // defaults; `skip` are keys handled by the caller.
  Table table(const Table& in, const std::string& prefix, const std::vector<const SchemaInfo*>& schemas,
              const std::vector<std::string>& skip = {}, bool check_unknown = true) {
    Table out;
    for (const auto& [k, v] : in) {
      if (std::find(skip.begin(), skip.end(), k) != skip.end()) continue;
      const FieldSpec* f = nullptr;
      for (const auto* s : schemas)
        if (s && !f) f = s->find(k);
      std::string key = key_join(prefix, k);
      if (!f) {
        if (!check_unknown) continue;  // options of an unknown component: already reported
        auto names = field_names(schemas);
        std::string hint = did_you_mean(k, names);
        if (hint.empty()) hint = names.empty() ? "this table takes no options" : "allowed keys: " + join(names);
        problem(key, "unknown key", hint);
        continue;
      }
      Value n = field(*f, v, key);
      if (!n.is_none()) out[k] = n;
    }
    for (const auto* s : schemas) {
      if (!s) continue;
      for (const auto& f : s->fields) {
        if (in.count(f.name)) continue;
        if (f.required) {
          problem(prefix, "missing required option '" + f.name + "' (" + expected_name(f.type, f.element) + ")", f.doc);
        } else if (!f.default_value.is_none() && !out.count(f.name)) {
          out[f.name] = f.type == FieldType::floating ? Value(f.default_value.as_double()) : f.default_value;
        }
      }
    }
    return out;
  }

  // A component table: `type` names a component of `kind`; `host` are the
  // host keys that may sit beside its options.
  Value component(Kind kind, const Table& in, const std::string& prefix, const SchemaInfo* host) {
    const std::string kind_name = qsdk::to_string(kind);
    auto it = in.find("type");
    const Component* c = nullptr;
    if (it == in.end()) {
      problem(prefix, "missing required key 'type' (the " + kind_name + " to use)",
              registry_.names(kind).empty() ? registry_.unknown_hint(kind, "")
                                            : "known " + kind_name + "s: " + join(registry_.names(kind)));
    } else if (it->second.type() != Value::Type::string) {
      problem(key_join(prefix, "type"),
              "expected string, got " + type_name(it->second.type()) + " " + it->second.to_string(),
              "write type = \"<" + kind_name + " name>\"");
    } else {
      const std::string& name = it->second.as_string();
      c = registry_.find(kind, name);
      if (!c) {
        problem(key_join(prefix, "type"), "unknown " + kind_name + " '" + name + "'", unknown_hint(kind, name));
      } else if (!load_list_.empty() && !c->provider.plugin.empty() &&
                 std::find(load_list_.begin(), load_list_.end(), c->provider.plugin) == load_list_.end()) {
        // Found only because everything was loaded (qhost check): `run` would not load it.
        problem(key_join(prefix, "type"),
                kind_name + " '" + name + "' is provided by plugin '" + c->provider.plugin +
                    "', which [plugins] load does not list",
                "add \"" + c->provider.plugin + "\" to [plugins] load");
      }
    }
    Table out = table(in, prefix, {host, c ? &c->spec.schema : nullptr}, {"type"}, /*check_unknown=*/c != nullptr);
    if (it != in.end()) out["type"] = it->second;
    return Value(std::move(out));
  }

  std::string unknown_hint(Kind kind, const std::string& name) {
    std::string hint = registry_.unknown_hint(kind, name);
    // A plugin named like the component exists but was not listed in [plugins] load.
    if (loader_ && !load_list_.empty() && std::find(load_list_.begin(), load_list_.end(), name) == load_list_.end() &&
        !loader_->resolve(name).empty())
      hint = "plugin '" + name + "' is installed but not loaded: add \"" + name + "\" to [plugins] load";
    return hint;
  }

  Value quant(const Table& in) {
    const SchemaInfo host = QuantOptions::schema().info();
    std::vector<std::string> skip = quant_targets();
    skip.push_back("override");
    Table out = table(in, "quant", {&host}, skip);
    for (const auto& t : quant_targets()) {
      auto it = in.find(t);
      if (it == in.end()) continue;
      Value q = quantizer_slot(it->second, "quant." + t, nullptr);
      if (!q.is_none()) out[t] = q;
    }
    auto ov = in.find("override");
    if (ov != in.end()) {
      if (ov->second.type() != Value::Type::list) {
        problem("quant.override",
                "expected an array of tables ([[quant.override]]), got " + type_name(ov->second.type()));
      } else {
        List list;
        for (size_t i = 0; i < ov->second.as_list().size(); ++i)
          list.push_back(override_entry(ov->second.as_list()[i], "quant.override[" + std::to_string(i) + "]", out));
        out["override"] = Value(std::move(list));
      }
    }
    return Value(std::move(out));
  }

  // "none" or a quantizer table; with `base`, a table without `type` is
  // merged onto it.
  Value quantizer_slot(const Value& v, const std::string& key, const Value* base) {
    if (v.type() == Value::Type::string) {
      if (v.as_string() != "none") {
        problem(key, "expected \"none\" or a quantizer table, got " + v.to_string(),
                "write " + key.substr(key.rfind('.') + 1) + " = \"none\" or a table with type = \"<quantizer>\"");
        return Value();
      }
      return v;
    }
    if (v.type() != Value::Type::table) {
      problem(key, "expected \"none\" or a quantizer table, got " + type_name(v.type()) + " " + v.to_string());
      return Value();
    }
    Table t = v.as_table();
    if (base && !t.count("type")) {
      if (!base->is_none() && base->type() == Value::Type::table) {
        Table merged = base->as_table();
        for (const auto& [k, x] : t) merged[k] = x;
        t = std::move(merged);
      } else {
        problem(key, "has no 'type' and there is no default quantizer to merge it onto",
                "add type = \"<quantizer>\", or define the default in [quant." + key.substr(key.rfind('.') + 1) + "]");
        return Value();
      }
    }
    return component(Kind::quantizer, t, key, nullptr);
  }

  Value override_entry(const Value& v, const std::string& key, const Table& quant) {
    if (v.type() != Value::Type::table) {
      problem(key, "expected a table, got " + type_name(v.type()));
      return Value();
    }
    Table out;
    const Table& in = v.as_table();
    std::vector<std::string> allowed{"match"};
    for (const auto& t : quant_targets()) allowed.push_back(t);
    for (const auto& [k, x] : in) {
      std::string child = key + "." + k;
      if (k == "match") {
        out[k] = match(x, child);
      } else if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) {
        auto base = quant.find(k);
        const Value none;
        Value q = quantizer_slot(x, child, base == quant.end() ? &none : &base->second);
        if (!q.is_none()) out[k] = q;
      } else {
        std::string hint = did_you_mean(k, allowed);
        problem(child, "unknown key", hint.empty() ? "allowed keys: " + join(allowed) : hint);
      }
    }
    if (!in.count("match"))
      problem(key, "missing required key 'match'", "e.g. match = { role = [\"stem\", \"head\"] }");
    return Value(std::move(out));
  }

  Value match(const Value& v, const std::string& key) {
    if (v.type() != Value::Type::table) {
      problem(key, "expected a table, got " + type_name(v.type()) + " " + v.to_string(),
              "e.g. match = { role = [\"shortcut\"], path = [\"layer1.*\"] }");
      return Value();
    }
    FieldSpec role;
    role.name = "role";
    role.type = FieldType::list;
    role.element = FieldType::enumeration;
    role.allowed = layer_roles();
    role.doc = "layer roles";
    FieldSpec path;
    path.name = "path";
    path.type = FieldType::list;
    path.element = FieldType::string;
    path.doc = "module path globs, e.g. \"layer1.*\"";
    SchemaInfo schema{"", {role, path}};
    Table out = table(v.as_table(), key, {&schema});
    if (v.as_table().empty())
      problem(key, "matches nothing: give role and/or path", "e.g. match = { role = [\"stem\"] }");
    return Value(std::move(out));
  }

  void run(Table& root, const std::string& stem) {
    Table out;
    std::vector<std::string> names;
    for (const auto& s : sections()) names.push_back(s.name);
    for (const auto& [k, v] : config_.root()) {
      const SectionSpec* s = find_section(k);
      if (!s) {
        std::string hint = did_you_mean(k, names);
        problem(k, "unknown section", hint.empty() ? "sections are: " + join(names) : hint);
        continue;
      }
      if (k == "schedule") continue;  // (sweep) names keys of the other sections: checked below
      if (s->array) {
        if (v.type() != Value::Type::list) {
          problem(k, "expected an array of tables ([[" + k + "]]), got " + type_name(v.type()) + " " + v.to_string());
          continue;
        }
        List list;
        for (size_t i = 0; i < v.as_list().size(); ++i) {
          std::string key = k + "[" + std::to_string(i) + "]";
          const Value& e = v.as_list()[i];
          if (e.type() != Value::Type::table) {
            problem(key, "expected a table, got " + type_name(e.type()) + " " + e.to_string());
            continue;
          }
          list.push_back(component(*s->component, e.as_table(), key, nullptr));
        }
        out[k] = Value(std::move(list));
        continue;
      }
      if (v.type() != Value::Type::table) {
        problem(k, "expected a table ([" + k + "]), got " + type_name(v.type()) + " " + v.to_string());
        continue;
      }
      if (k == "quant")
        out[k] = quant(v.as_table());
      else if (s->component)
        out[k] = component(*s->component, v.as_table(), k, s->host_keys.fields.empty() ? nullptr : &s->host_keys);
      else
        out[k] = Value(table(v.as_table(), k, {&s->host_keys}));
    }
    // Absent sections: required ones are a problem, the others get their defaults.
    for (const auto& s : sections()) {
      if (out.count(s.name) || config_.root().count(s.name)) continue;
      if (s.required) {
        std::string kind = s.component ? qsdk::to_string(*s.component) : "";
        problem(s.name, "missing required section [" + s.name + "]",
                "add [" + s.name + "] with type = \"<" + kind + ">\"" +
                    (registry_.names(*s.component).empty()
                         ? ""
                         : "; known " + kind + "s: " + join(registry_.names(*s.component))));
      } else if (s.name == "quant") {
        out[s.name] = quant(Table{});
      } else if (s.array) {
        out[s.name] = Value(List{});
      } else if (!s.component) {
        out[s.name] = Value(table(Table{}, s.name, {&s.host_keys}));
      }
    }
    // (sweep) [[schedule]] names keys of the resolved sections, so it is checked last.
    if (config_.root().count("schedule")) {
      try {
        // Quantizer keys: options checked against the quantizer's schema like [quant] itself.
        ScheduleQuantChecks qc;
        auto raw_quant = config_.root().find("quant");
        if (raw_quant != config_.root().end() && raw_quant->second.type() == Value::Type::table)
          qc.raw_quant = &raw_quant->second.as_table();
        qc.schema = [this](const std::string& type) -> const SchemaInfo* {
          const Component* c = registry_.find(Kind::quantizer, type);
          return c ? &c->spec.schema : nullptr;
        };
        qc.field = [this](const FieldSpec& f, const Value& v, const std::string& key) { return field(f, v, key); };
        Value s = check_schedule(config_.root().at("schedule"), out,
                                 [this](const std::string& k, const std::string& m, const std::string& h) {
                                   problem(k, m, h);
                                 },
                                 &qc);
        if (!s.is_none()) out["schedule"] = s;
      } catch (const std::exception&) {
        // A section it reads had problems of its own; those are reported already.
      }
    }
    // Device and precision together: "cuda" on a CPU-only build, fp16 on the CPU.
    device_problems(out);
    // [experiment] name defaults to the file stem, so a copied resolved.toml keeps it.
    if (out.count("experiment") && !stem.empty()) {
      auto& e = out["experiment"].as_table();
      if (e.count("name") && e["name"].type() == Value::Type::string && e["name"].as_string().empty())
        e["name"] = Value(stem);
    }
    root = std::move(out);
  }

 private:
  // Checked without touching a GPU, so `qhost check` gives the same answer on a login node.
  void device_problems(const Table& out) {
    auto str = [&out](const char* section, const char* key, const char* fallback) -> std::string {
      auto s = out.find(section);
      if (s == out.end() || s->second.type() != Value::Type::table) return fallback;
      auto v = s->second.as_table().find(key);
      return v != s->second.as_table().end() && v->second.type() == Value::Type::string ? v->second.as_string()
                                                                                        : fallback;
    };
    std::string key, hint;
    const std::string message =
        device_config_problem(str("experiment", "device", "auto"), str("train", "precision", "fp32"), &key, &hint);
    if (!message.empty()) problem(key, message, hint);
  }

  const Config& config_;
  const Registry& registry_;
  const PluginLoader* loader_;
  std::vector<std::string> load_list_;
};

namespace {
// [plugins] path / load as given (problems are reported by the full
// validation later); paths made absolute relative to the file defining them.
std::vector<std::string> string_list(const Table& root, const std::string& key) {
  std::vector<std::string> out;
  auto p = root.find("plugins");
  if (p == root.end() || p->second.type() != Value::Type::table) return out;
  auto it = p->second.as_table().find(key);
  if (it == p->second.as_table().end() || it->second.type() != Value::Type::list) return out;
  for (const auto& e : it->second.as_list())
    if (e.type() == Value::Type::string) out.push_back(e.as_string());
  return out;
}
}  // namespace

std::vector<ConfigProblem> Config::check(const Registry& registry, const PluginLoader* loader) {
  Validator v(*this, registry, loader, string_list(root_, "load"));
  Table resolved;
  std::string stem = path_.empty() ? "" : fs::path(path_).stem().string();
  v.run(resolved, stem);
  if (!v.problems.empty()) {
    // Report in reading order: file, then line, then column.
    std::stable_sort(v.problems.begin(), v.problems.end(), [](const ConfigProblem& a, const ConfigProblem& b) {
      return std::tie(a.where.file, a.where.line, a.where.column) <
             std::tie(b.where.file, b.where.line, b.where.column);
    });
    return v.problems;
  }
  // Path options (FieldSpec::path: [plugins] path, [train] init_from, dataset
  // roots, ...) are absolute now, relative to the file that named them.
  root_ = std::move(resolved);
  quant_policy_ = QuantPolicy::from_table(section_table(root_, "quant"));
  return {};
}

void Config::validate(Registry& registry, PluginLoader& loader, bool load_everything) {
  // Plugin folders first: relative to the file that names them.
  std::vector<std::string> dirs;
  auto raw_paths = string_list(root_, "path");
  for (size_t i = 0; i < raw_paths.size(); ++i)
    dirs.push_back(resolve_path("plugins.path[" + std::to_string(i) + "]", raw_paths[i]));
  loader.add_config_dirs(dirs);
  std::vector<std::string> failures;
  auto load_list = string_list(root_, "load");
  // Listed plugins first, so their failures point at the TOML line.
  for (size_t i = 0; i < load_list.size(); ++i) {
    try {
      loader.load(load_list[i]);
    } catch (const qsdk::Error& e) {
      failures.push_back(location("plugins.load[" + std::to_string(i) + "]").str() + ": " + e.what());
    }
  }
  if (load_list.empty() || load_everything) {
    for (const auto& e : loader.load_all()) {
      std::string what = e.what();
      if (std::find_if(failures.begin(), failures.end(), [&](const std::string& f) {
            return f.find(what) != std::string::npos;
          }) == failures.end())
        failures.push_back(what);
    }
  }
  if (!failures.empty()) {
    std::string msg = failures.size() == 1
                          ? failures[0]
                          : std::to_string(failures.size()) + " plugins failed to load:\n  " + join(failures, "\n  ");
    throw qsdk::Error(qsdk::ErrorCategory::plugin, "", msg);
  }
  plugin_notes_.clear();
  for (const auto& p : loader.loaded()) plugin_notes_.push_back(p.name + " " + p.version + " (" + p.path + ")");

  auto problems = check(registry, &loader);
  if (problems.empty()) return;
  std::vector<std::string> lines;
  for (const auto& p : problems) lines.push_back(p.str());
  std::string count = problems.size() == 1 ? "1 problem" : std::to_string(problems.size()) + " problems";
  throw qsdk::Error(qsdk::ErrorCategory::config, origin_, count + ":\n  " + join(lines, "\n  "));
}

}  // namespace qhost
