// [[schedule]] validation: what `qhost check` accepts of a schedule (the keys
// whose change can be applied exactly, their types and ranges). Applying a
// validated schedule while training is train/policy_schedule.cpp.
#include "config/schedule_check.hpp"

#include "config/sections.hpp"
#include "platform/errors.hpp"
#include "quant/quant_policy.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>

namespace qhost {
namespace {

using qsdk::List;
using qsdk::Table;
using qsdk::Value;

// The value at a dotted key of `root`, or nullptr; `parent` gets the last table reached.
const Value* find_dotted(const Table& root, const std::string& dotted, const Table** parent) {
  const Table* t = &root;
  size_t start = 0;
  while (true) {
    *parent = t;
    const size_t dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto it = t->find(part);
    if (it == t->end()) return nullptr;
    if (dot == std::string::npos) return &it->second;
    if (it->second.type() != Value::Type::table) return nullptr;
    t = &it->second.as_table();
    start = dot + 1;
  }
}

// The typed policy of a `[quant]` table, or nullopt when it is malformed (the
// validator reports that itself).
std::optional<QuantPolicy> policy_of(const Table* quant) {
  if (!quant) return std::nullopt;
  try {
    return QuantPolicy::from_table(*quant);
  } catch (const qsdk::Error&) {
    return std::nullopt;
  }
}

// Validates one quantizer key of a schedule entry: "quant.<target>.<option>" or
// "quant.override[i].<target>.<option>"; adds the normalized value (and, for a
// default, the overrides that inherit the option) to `set_out`.
void check_quant_key(const std::string& dotted, const Value& v, const std::string& k, const Table& resolved,
                     const ScheduleQuantChecks& checks, Table& set_out, std::map<std::string, Value>& inherited,
                     const std::function<void(const std::string&, const std::string&, const std::string&)>& report) {
  const auto parsed = QuantKey::parse(dotted.substr(6));
  if (!parsed.key) {
    report(k, parsed.message, parsed.hint);
    return;
  }
  const QuantKey& key = *parsed.key;
  const std::string target = qsdk::to_string(key.target), option = key.option;
  auto q = resolved.find("quant");
  const auto policy = policy_of(q != resolved.end() && q->second.type() == Value::Type::table ? &q->second.as_table()
                                                                                              : nullptr);
  const QuantizerChoice* table = nullptr;
  if (key.override_index >= 0) {
    if (!policy || key.override_index >= static_cast<int64_t>(policy->overrides.size())) {
      report(k, "there is no [[quant.override]] entry " + std::to_string(key.override_index),
             "entries are numbered from 0 in file order");
      return;
    }
    const auto& entry = policy->overrides[static_cast<size_t>(key.override_index)].at(key.target);
    if (entry) table = &entry->choice;
  } else if (policy) {
    table = &policy->default_for(key.target);
  }
  const std::string where = key.override_index >= 0
                                ? "quant.override[" + std::to_string(key.override_index) + "]." + target
                                : "[quant." + target + "]";
  if (!table || !*table) {
    report(k, where + " is not quantized in this configuration: there is no quantizer option to change",
           "a schedule changes options of existing quantizers; it cannot add one");
    return;
  }
  const std::string type = (*table)->at("type").as_string();
  if (option == "type") {
    report(k, "a schedule cannot change the quantizer type", "change options of the '" + type + "' quantizer");
    return;
  }
  const qsdk::SchemaInfo* schema = checks.schema ? checks.schema(type) : nullptr;
  if (!schema) {
    report(k, "unknown quantizer '" + type + "'", "");
    return;
  }
  const qsdk::FieldSpec* f = schema->find(option);
  if (!f) {
    std::vector<std::string> names;
    for (const auto& x : schema->fields) names.push_back(x.name);
    std::string hint = did_you_mean(option, names);
    report(k, "quantizer '" + type + "' has no option '" + option + "'",
           hint.empty() ? "its options: " + join(names) : hint);
    return;
  }
  Value n = checks.field(*f, v, k);
  if (n.is_none()) return;  // reported by checks.field
  set_out[dotted] = n;
  if (key.override_index >= 0) return;
  // Overrides (as written) that merge onto this default without naming the option inherit it.
  const auto raw = policy_of(checks.raw_quant);
  if (!raw) return;
  for (size_t i = 0; i < raw->overrides.size(); ++i) {
    const auto& entry = raw->overrides[i].at(key.target);
    if (!entry || !entry->merged_onto_default ||
        std::find(entry->written.begin(), entry->written.end(), option) != entry->written.end())
      continue;
    inherited["quant.override[" + std::to_string(i) + "]." + target + "." + option] = n;
  }
}

}  // namespace

const std::vector<std::string>& schedule_supported_keys() {
  static const std::vector<std::string> keys{"optimizer.lr", "optimizer.weight_decay", "optimizer.momentum",
                                             "quant.<weight|activation|output>.<option>",
                                             "quant.override[i].<weight|activation|output>.<option>"};
  return keys;
}

Value check_schedule(const Value& raw, const Table& resolved, const ProblemSink& problem,
                     const ScheduleQuantChecks* quant) {
  if (raw.type() != Value::Type::list) {
    problem("schedule", "expected an array of tables ([[schedule]]), got " + raw.to_string(),
            "write [[schedule]] with epoch = N and set = { \"optimizer.lr\" = 0.01 }");
    return Value();
  }
  const auto train = section_options<TrainOptions>(resolved, "train");
  const auto opt = section_options<OptimizerOptions>(resolved, "optimizer");
  const auto opt_schema = OptimizerOptions::schema().info();
  size_t problems = 0;
  auto report = [&](const std::string& k, const std::string& m, const std::string& h) {
    ++problems;
    problem(k, m, h);
  };
  List out;
  for (size_t i = 0; i < raw.as_list().size(); ++i) {
    const std::string key = "schedule[" + std::to_string(i) + "]";
    const Value& e = raw.as_list()[i];
    if (e.type() != Value::Type::table) {
      report(key, "expected a table, got " + e.to_string(), "");
      continue;
    }
    const Table& t = e.as_table();
    for (const auto& [k, v] : t)
      if (k != "epoch" && k != "set") {
        std::string hint = did_you_mean(k, {"epoch", "set"});
        report(key + "." + k, "unknown key", hint.empty() ? "allowed keys: epoch, set" : hint);
      }
    auto ep = t.find("epoch");
    int64_t epoch = -1;
    if (ep == t.end()) {
      report(key, "missing required key 'epoch' (int)", "the 0-based epoch at whose start the values change");
    } else if (ep->second.type() != Value::Type::integer) {
      report(key + ".epoch", "expected int, got " + ep->second.to_string(), "the 0-based epoch");
    } else {
      epoch = ep->second.as_int();
      if (epoch < 0 || epoch >= train.epochs)
        report(key + ".epoch", std::to_string(epoch) + " is outside [0, " + std::to_string(train.epochs - 1) + "]",
               "train.epochs is " + std::to_string(train.epochs) + ": a change at epoch " + std::to_string(epoch) +
                   " would never apply");
    }
    auto set = t.find("set");
    Table set_out;
    if (set == t.end()) {
      report(key, "missing required key 'set' (table)", "e.g. set = { \"optimizer.lr\" = 0.01 }");
    } else if (set->second.type() != Value::Type::table || set->second.as_table().empty()) {
      report(key + ".set", "expected a non-empty table of \"dotted.key\" = value, got " + set->second.to_string(),
             "e.g. set = { \"optimizer.lr\" = 0.01 }");
    } else {
      std::map<std::string, Value> inherited;
      for (const auto& [dotted, v] : set->second.as_table()) {
        const std::string k = key + ".set." + dotted;
        if (QuantKey::names_quant(dotted) && quant) {
          check_quant_key(dotted, v, k, resolved, *quant, set_out, inherited, report);
          continue;
        }
        const Table* parent = nullptr;
        const Value* current = find_dotted(resolved, dotted, &parent);
        if (!current) {
          std::vector<std::string> names;
          const std::string prefix =
              dotted.find('.') == std::string::npos ? "" : dotted.substr(0, dotted.rfind('.') + 1);
          for (const auto& [n, x] : *parent) names.push_back(prefix + n);
          std::string hint = did_you_mean(dotted, names);
          report(k, "'" + dotted + "' is not a key of the resolved configuration",
                 hint.empty() ? "see `qhost check FILE --print`" : hint);
          continue;
        }
        const auto& supported = schedule_supported_keys();
        if (std::find(supported.begin(), supported.end(), dotted) == supported.end()) {
          report(
              k,
              "'" + dotted + "' cannot be changed by a schedule (this qhost applies only changes it can make exactly)",
              "supported keys: " + join(supported));
          continue;
        }
        if (v.type() != Value::Type::integer && v.type() != Value::Type::floating) {
          report(k, "expected float, got " + v.to_string(), "the current value is " + current->to_string());
          continue;
        }
        const double x = v.as_double();
        const auto* f = opt_schema.find(dotted.substr(dotted.find('.') + 1));
        if (f && !f->in_range(x)) {
          report(k,
                 v.to_string() + " is out of range" +
                     (f->min && f->max ? " " + f->range_text()
                      : f->min && !f->min_exclusive ? " (minimum " + short_number(*f->min) + ")"
                      : f->max && !f->max_exclusive ? " (maximum " + short_number(*f->max) + ")"
                                                    : " (" + f->range_text() + ")"),
                 f->doc);
          continue;
        }
        if (dotted == "optimizer.momentum") {
          if (opt.type != "sgd") {
            report(k, "momentum is an SGD option; this run uses optimizer '" + opt.type + "'", "remove it");
            continue;
          }
          if (opt.nesterov && x <= 0.0) {
            report(k, "Nesterov momentum needs momentum > 0", "set optimizer.nesterov = false or keep momentum > 0");
            continue;
          }
        }
        set_out[dotted] = Value(x);
      }
      // An override key the entry sets itself wins over the inherited default.
      for (const auto& [dotted, v] : inherited)
        if (!set_out.count(dotted)) set_out[dotted] = v;
    }
    Table entry;
    entry["epoch"] = Value(epoch);
    entry["set"] = Value(std::move(set_out));
    out.push_back(Value(std::move(entry)));
  }
  if (problems > 0) return Value();
  std::stable_sort(out.begin(), out.end(), [](const Value& a, const Value& b) {
    return a.as_table().at("epoch").as_int() < b.as_table().at("epoch").as_int();
  });
  return Value(std::move(out));
}

}  // namespace qhost
