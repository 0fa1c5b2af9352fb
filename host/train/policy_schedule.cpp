// [[schedule]] application while training (validation is
// config/schedule_check.cpp); also Optimizer::rebind and update_hyper, which a
// schedule's optimizer keys use.
#include "train/policy_schedule.hpp"

#include "config/schedule_check.hpp"
#include "platform/errors.hpp"
#include "quant/quant_rebuild.hpp"
#include "train/optimizer.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>

namespace qhost {
namespace {

using qsdk::Table;
using qsdk::Value;

bool any_substring(const std::vector<std::string>& list, const std::string& name) {
  for (const auto& s : list)
    if (!s.empty() && name.find(s) != std::string::npos) return true;
  return false;
}

// The scheduler PolicySchedule::wrap returns: `inner`'s lr times the scheduled
// optimizer.lr over the base lr.
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
      if (QuantKey::names_quant(k)) return true;
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
    if (done_[i][j] || !QuantKey::names_quant(key)) continue;
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
      changes.push_back(key + ": " + short_number(old) + " -> " + short_number(v) + from);
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
