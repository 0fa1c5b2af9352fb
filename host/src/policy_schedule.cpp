// [[schedule]] validation and application; also Optimizer::update_hyper,
// which needs the LibTorch option types (kept here so optimizer.cpp stays as is).
#include "policy_schedule.hpp"

#include "errors.hpp"
#include "optimizer.hpp"
#include "quant_policy.hpp"
#include "quant_rebuild.hpp"
#include "sections.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

namespace qhost {
namespace {

using qsdk::List;
using qsdk::Table;
using qsdk::Value;

std::string short_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

bool any_substring(const std::vector<std::string>& list, const std::string& name) {
  for (const auto& s : list)
    if (!s.empty() && name.find(s) != std::string::npos) return true;
  return false;
}

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

class ScaledScheduler : public qsdk::Scheduler {
 public:
  ScaledScheduler(std::shared_ptr<qsdk::Scheduler> inner, double base_lr, std::shared_ptr<double> factor)
      : inner_(std::move(inner)), base_lr_(base_lr), factor_(std::move(factor)) {}
  double lr(int64_t epoch, int64_t iter) const override {
    return (inner_ ? inner_->lr(epoch, iter) : base_lr_) * *factor_;
  }

 private:
  std::shared_ptr<qsdk::Scheduler> inner_;
  double base_lr_;
  std::shared_ptr<double> factor_;
};

bool is_quant_key(const std::string& dotted) { return dotted.rfind("quant.", 0) == 0; }

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
        if (is_quant_key(dotted) && quant) {
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
                      : f->min && !f->min_exclusive ? " (minimum " + short_num(*f->min) + ")"
                      : f->max && !f->max_exclusive ? " (maximum " + short_num(*f->max) + ")"
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

std::shared_ptr<PolicySchedule> PolicySchedule::from_config(const Table& root) {
  auto it = root.find("schedule");
  if (it == root.end() || it->second.type() != Value::Type::list || it->second.as_list().empty()) return nullptr;
  auto s = std::make_shared<PolicySchedule>();
  for (const auto& e : it->second.as_list()) {
    ScheduleEntry entry;
    entry.epoch = e.as_table().at("epoch").as_int();
    for (const auto& [k, v] : e.as_table().at("set").as_table()) entry.set.emplace_back(k, v);
    s->entries_.push_back(std::move(entry));
  }
  std::stable_sort(s->entries_.begin(), s->entries_.end(),
                   [](const ScheduleEntry& a, const ScheduleEntry& b) { return a.epoch < b.epoch; });
  for (const auto& e : s->entries_) s->done_.emplace_back(e.set.size(), false);
  return s;
}

bool PolicySchedule::changes_lr() const {
  for (const auto& e : entries_)
    for (const auto& [k, v] : e.set)
      if (k == "optimizer.lr") return true;
  return false;
}

bool PolicySchedule::changes_quant() const {
  for (const auto& e : entries_)
    for (const auto& [k, v] : e.set)
      if (is_quant_key(k)) return true;
  return false;
}

void PolicySchedule::attach_quantizers(std::shared_ptr<QuantRebuilder> rebuilder) { quant_ = std::move(rebuilder); }

std::shared_ptr<qsdk::Scheduler> PolicySchedule::wrap(std::shared_ptr<qsdk::Scheduler> inner, double base_lr) {
  base_lr_ = base_lr;
  return std::make_shared<ScaledScheduler>(std::move(inner), base_lr, lr_factor_);
}

std::vector<std::string> PolicySchedule::apply(size_t i, Optimizer* optimizer, bool quant_only) {
  std::vector<std::string> changes;
  const auto& entry = entries_[i];
  const std::string from = " (schedule entry for epoch " + std::to_string(entry.epoch) + ")";
  // Quantizer options first, all of the entry at once: one rebuild sees them together.
  bool quant_changed = false;
  for (size_t j = 0; j < entry.set.size(); ++j) {
    const auto& [key, value] = entry.set[j];
    if (done_[i][j] || !is_quant_key(key)) continue;
    if (!quant_)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, key, "the schedule has no quantizers to change",
                        "internal: attach_quantizers() was not called");
    const Value old = quant_->set_option(key.substr(6), value);
    changes.push_back(key + ": " + old.to_string() + " -> " + value.to_string() + from);
    done_[i][j] = true;
    quant_changed = true;
  }
  if (quant_changed) {
    const auto report = quant_->rebuild();
    std::string line = "quantizers: " + report.summary() + from;
    if (report.changed_tensors() && optimizer) {
      // The new quantizers own new tensors: the optimizer must step those.
      const auto dropped = optimizer->rebind(quant_->model());
      line += "; optimizer groups rebuilt";
      if (!dropped.empty())
        line += ", state dropped for " + std::to_string(dropped.size()) + " parameter" +
                (dropped.size() == 1 ? "" : "s") + " (" + dropped.front() + (dropped.size() > 1 ? ", ..." : "") + ")";
      for (const auto& d : dropped) spdlog::debug("schedule: optimizer state of {} dropped (new shape)", d);
    }
    changes.push_back(line);
  }
  if (!quant_only && optimizer) {
    for (size_t j = 0; j < entry.set.size(); ++j) {
      const auto& [key, value] = entry.set[j];
      if (done_[i][j]) continue;
      const double v = value.as_double();
      const double old = optimizer->update_hyper(key.substr(key.find('.') + 1), v);
      if (key == "optimizer.lr") *lr_factor_ = base_lr_ != 0.0 ? v / base_lr_ : 1.0;
      changes.push_back(key + ": " + short_num(old) + " -> " + short_num(v) + from);
      done_[i][j] = true;
    }
  }
  return changes;
}

std::vector<std::string> PolicySchedule::on_epoch_begin(int64_t epoch, Optimizer& optimizer) {
  std::vector<std::string> changes;
  for (size_t i = 0; i < entries_.size() && entries_[i].epoch <= epoch; ++i)
    for (auto& line : apply(i, &optimizer, false)) {
      spdlog::info("epoch {}: {}", epoch + 1, line);
      changes.push_back(std::move(line));
    }
  return changes;
}

std::vector<std::string> PolicySchedule::catch_up_quantizers(int64_t epochs_done, Optimizer* optimizer) {
  std::vector<std::string> changes;
  for (size_t i = 0; i < entries_.size() && entries_[i].epoch < epochs_done; ++i)
    for (auto& line : apply(i, optimizer, true)) {
      spdlog::info("before loading the checkpoint: {}", line);
      changes.push_back(std::move(line));
    }
  return changes;
}

std::vector<std::string> Optimizer::rebind(const torch::nn::Module& module) {
  NamedTensors kept = state();
  Optimizer fresh(module, settings_);
  groups_ = std::move(fresh.groups_);
  impl_ = std::move(fresh.impl_);
  std::map<std::string, const ParamGroup*> by_name;
  for (const auto& g : groups_) by_name[g.name] = &g;
  // A parameter keeps all of its state or none (Adam needs step and moments together).
  std::vector<std::string> dropped;
  for (const auto& [key, t] : kept) {
    const std::string name = key.substr(0, key.rfind('/'));
    auto it = by_name.find(name);
    const bool step = key.size() > 5 && key.compare(key.size() - 5, 5, "/step") == 0;
    if ((it == by_name.end() || (!step && t.sizes() != it->second->param.sizes())) &&
        std::find(dropped.begin(), dropped.end(), name) == dropped.end())
      dropped.push_back(name);
  }
  NamedTensors fits;
  for (const auto& [key, t] : kept)
    if (std::find(dropped.begin(), dropped.end(), key.substr(0, key.rfind('/'))) == dropped.end())
      fits.emplace_back(key, t);
  load_state(fits, "schedule");
  return dropped;
}

double Optimizer::update_hyper(const std::string& name, double value) {
  auto& pgs = impl_->param_groups();
  const bool sgd = settings_.type == "sgd";
  double old = 0.0;
  if (name == "lr") {
    old = settings_.rules.lr;
    // Groups that took the global lr follow it; custom and constant groups keep theirs.
    for (auto& g : groups_)
      if (!g.lr_constant && !any_substring(settings_.rules.custom_lr_list, g.name)) g.lr = value;
    settings_.rules.lr = value;
    // The next set_lr() (every step) applies it; without a scheduler apply it now too.
    set_lr(value);
  } else if (name == "weight_decay") {
    old = settings_.rules.weight_decay;
    for (size_t i = 0; i < groups_.size(); ++i) {
      auto& g = groups_[i];
      if (any_substring(settings_.rules.custom_decay_list, g.name)) continue;
      if (!settings_.rules.decay_small && g.small) continue;
      g.weight_decay = value;
      if (sgd)
        static_cast<torch::optim::SGDOptions&>(pgs[i].options()).weight_decay(value);
      else
        static_cast<torch::optim::AdamOptions&>(pgs[i].options()).weight_decay(value);
    }
    settings_.rules.weight_decay = value;
  } else if (name == "momentum" && sgd) {
    old = settings_.momentum;
    for (auto& pg : pgs) static_cast<torch::optim::SGDOptions&>(pg.options()).momentum(value);
    settings_.momentum = value;
  } else {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "optimizer." + name,
                      "cannot be changed while training (" + settings_.type + ")",
                      "supported: " + join(schedule_supported_keys()));
  }
  return old;
}

}  // namespace qhost
