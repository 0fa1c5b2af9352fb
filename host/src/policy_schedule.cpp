// [[schedule]] validation and application; also Optimizer::update_hyper,
// which needs the LibTorch option types (kept here so optimizer.cpp stays as is).
#include "policy_schedule.hpp"

#include "errors.hpp"
#include "optimizer.hpp"
#include "sections.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

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

}  // namespace

const std::vector<std::string>& schedule_supported_keys() {
  static const std::vector<std::string> keys{"optimizer.lr", "optimizer.weight_decay", "optimizer.momentum"};
  return keys;
}

Value check_schedule(const Value& raw, const Table& resolved, const ProblemSink& problem) {
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
      for (const auto& [dotted, v] : set->second.as_table()) {
        const std::string k = key + ".set." + dotted;
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
        if (f && ((f->min && x < *f->min) || (f->max && x > *f->max))) {
          report(k,
                 v.to_string() + " is out of range" +
                     (f->min && f->max ? " [" + short_num(*f->min) + ", " + short_num(*f->max) + "]"
                      : f->min         ? " (minimum " + short_num(*f->min) + ")"
                                       : " (maximum " + short_num(*f->max) + ")"),
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
  return s;
}

bool PolicySchedule::changes_lr() const {
  for (const auto& e : entries_)
    for (const auto& [k, v] : e.set)
      if (k == "optimizer.lr") return true;
  return false;
}

std::shared_ptr<qsdk::Scheduler> PolicySchedule::wrap(std::shared_ptr<qsdk::Scheduler> inner, double base_lr) {
  base_lr_ = base_lr;
  return std::make_shared<ScaledScheduler>(std::move(inner), base_lr, lr_factor_);
}

std::vector<std::string> PolicySchedule::on_epoch_begin(int64_t epoch, Optimizer& optimizer) {
  std::vector<std::string> changes;
  while (next_ < entries_.size() && entries_[next_].epoch <= epoch) {
    for (const auto& [key, value] : entries_[next_].set) {
      const double v = value.as_double();
      const double old = optimizer.update_hyper(key.substr(key.find('.') + 1), v);
      if (key == "optimizer.lr") *lr_factor_ = base_lr_ != 0.0 ? v / base_lr_ : 1.0;
      changes.push_back(key + ": " + short_num(old) + " -> " + short_num(v) + " (schedule entry for epoch " +
                        std::to_string(entries_[next_].epoch) + ")");
      spdlog::info("epoch {}: {}", epoch + 1, changes.back());
    }
    ++next_;
  }
  return changes;
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
