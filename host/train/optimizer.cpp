#include "train/optimizer.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <map>
#include <sstream>

namespace qhost {
namespace {

template <class T>
T get_or(const qsdk::Table& table, const char* key, T fallback);
template <>
double get_or(const qsdk::Table& table, const char* key, double fallback) {
  auto it = table.find(key);
  return it == table.end() || it->second.is_none() ? fallback : it->second.as_double();
}
template <>
bool get_or(const qsdk::Table& table, const char* key, bool fallback) {
  auto it = table.find(key);
  return it == table.end() || it->second.is_none() ? fallback : it->second.as_bool();
}
template <>
std::string get_or(const qsdk::Table& table, const char* key, std::string fallback) {
  auto it = table.find(key);
  return it == table.end() || it->second.is_none() ? fallback : it->second.as_string();
}
template <>
std::vector<std::string> get_or(const qsdk::Table& table, const char* key, std::vector<std::string> fallback) {
  auto it = table.find(key);
  if (it == table.end() || it->second.is_none()) return fallback;
  std::vector<std::string> out;
  for (const auto& v : it->second.as_list()) out.push_back(v.as_string());
  return out;
}

std::string key_of(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

}  // namespace

OptimizerSettings OptimizerSettings::from_table(const qsdk::Table& t) {
  OptimizerSettings s;
  s.type = get_or<std::string>(t, "type", s.type);
  s.momentum = get_or<double>(t, "momentum", s.momentum);
  s.nesterov = get_or<bool>(t, "nesterov", s.nesterov);
  s.beta1 = get_or<double>(t, "beta1", s.beta1);
  s.beta2 = get_or<double>(t, "beta2", s.beta2);
  s.eps = get_or<double>(t, "eps", s.eps);
  s.rules.lr = get_or<double>(t, "lr", s.rules.lr);
  s.rules.weight_decay = get_or<double>(t, "weight_decay", s.rules.weight_decay);
  s.rules.decay_small = get_or<bool>(t, "decay_small", s.rules.decay_small);
  s.rules.custom_lr_list = get_or<std::vector<std::string>>(t, "custom_lr_list", {});
  s.rules.custom_lr = get_or<double>(t, "custom_lr", s.rules.custom_lr);
  s.rules.custom_decay_list = get_or<std::vector<std::string>>(t, "custom_decay_list", {});
  s.rules.custom_decay = get_or<double>(t, "custom_decay", s.rules.custom_decay);
  return s;
}

Optimizer::Optimizer(const torch::nn::Module& module, const OptimizerSettings& settings)
    : settings_(settings), groups_(make_param_groups(module, settings.rules)) {
  if (groups_.empty())
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "[optimizer]", "the model has no trainable parameters");
  if (settings_.type == "sgd") {
    if (settings_.nesterov && settings_.momentum <= 0.0)
      qsdk::config_error("optimizer.nesterov", "Nesterov momentum needs momentum > 0", "set optimizer.momentum");
    std::vector<torch::optim::OptimizerParamGroup> pg;
    for (const auto& g : groups_)
      pg.emplace_back(std::vector<torch::Tensor>{g.param},
                      std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(g.lr)
                                                                     .momentum(settings_.momentum)
                                                                     .nesterov(settings_.nesterov)
                                                                     .weight_decay(g.weight_decay)));
    impl_ = std::make_unique<torch::optim::SGD>(std::move(pg), torch::optim::SGDOptions(settings_.rules.lr));
  } else if (settings_.type == "adam") {
    std::vector<torch::optim::OptimizerParamGroup> pg;
    for (const auto& g : groups_)
      pg.emplace_back(std::vector<torch::Tensor>{g.param},
                      std::make_unique<torch::optim::AdamOptions>(
                          torch::optim::AdamOptions(g.lr)
                              .betas(std::make_tuple(settings_.beta1, settings_.beta2))
                              .eps(settings_.eps)
                              .weight_decay(g.weight_decay)));
    impl_ = std::make_unique<torch::optim::Adam>(std::move(pg), torch::optim::AdamOptions(settings_.rules.lr));
  } else {
    qsdk::config_error("optimizer.type", "unknown optimizer '" + settings_.type + "'", "use \"sgd\" or \"adam\"");
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() {
  // Zeroed, not reset to undefined, as PyTorch < 2.0 (the reference) did: a
  // parameter that gets no gradient in a step still receives momentum and decay.
  for (auto& g : groups_) {
    auto& grad = g.param.mutable_grad();
    if (grad.defined()) {
      grad.detach_();
      grad.zero_();
    }
  }
}

void Optimizer::step() { impl_->step(); }

void Optimizer::set_lr(double scheduled) {
  auto& pgs = impl_->param_groups();
  const double base = settings_.rules.lr;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const auto& g = groups_[i];
    const double lr = g.lr_constant ? g.lr : (base != 0.0 ? scheduled * g.lr / base : scheduled);
    pgs[i].options().set_lr(lr);
  }
}

double Optimizer::current_lr() const {
  const auto& pgs = impl_->param_groups();
  for (size_t i = 0; i < groups_.size(); ++i)
    if (!groups_[i].lr_constant) return pgs[i].options().get_lr();
  return pgs.empty() ? 0.0 : pgs[0].options().get_lr();
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  const auto& st = impl_->state();
  for (const auto& g : groups_) {
    auto it = st.find(key_of(g.param));
    if (it == st.end()) continue;
    if (settings_.type == "sgd") {
      const auto& s = static_cast<const torch::optim::SGDParamState&>(*it->second);
      if (s.momentum_buffer().defined()) out.emplace_back(g.name + "/momentum_buffer", s.momentum_buffer());
    } else {
      const auto& s = static_cast<const torch::optim::AdamParamState&>(*it->second);
      out.emplace_back(g.name + "/step", torch::tensor(s.step(), torch::kInt64));
      if (s.exp_avg().defined()) out.emplace_back(g.name + "/exp_avg", s.exp_avg());
      if (s.exp_avg_sq().defined()) out.emplace_back(g.name + "/exp_avg_sq", s.exp_avg_sq());
    }
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& state, const std::string& origin) {
  std::map<std::string, const ParamGroup*> by_name;
  for (const auto& g : groups_) by_name[g.name] = &g;
  std::map<std::string, std::map<std::string, torch::Tensor>> per_param;
  std::vector<std::string> problems;
  for (const auto& [key, t] : state) {
    const auto slash = key.rfind('/');
    const std::string name = key.substr(0, slash);
    const std::string what = slash == std::string::npos ? "" : key.substr(slash + 1);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back("optimizer state for unknown parameter '" + name + "'");
      continue;
    }
    if (what != "step" && t.sizes() != it->second->param.sizes()) {
      std::ostringstream o;
      o << "optimizer state '" << key << "' has shape " << t.sizes() << ", parameter has "
        << it->second->param.sizes();
      problems.push_back(o.str());
      continue;
    }
    per_param[name][what] = t;
  }
  if (!problems.empty()) {
    std::string msg = "optimizer state does not fit the model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw qsdk::Error(qsdk::ErrorCategory::checkpoint, origin + ":/optimizer", msg,
                      "the checkpoint was written for another model or optimizer");
  }
  auto& st = impl_->state();
  st.clear();
  for (const auto& [name, entries] : per_param) {
    const torch::Tensor& p = by_name[name]->param;
    auto like = [&p](const torch::Tensor& t) { return t.to(p.options()).clone(); };
    if (settings_.type == "sgd") {
      // LibTorch's SGD treats an existing state as holding a buffer.
      auto it = entries.find("momentum_buffer");
      if (it == entries.end()) continue;
      auto s = std::make_unique<torch::optim::SGDParamState>();
      s->momentum_buffer(like(it->second));
      st[key_of(p)] = std::move(s);
    } else {
      auto s = std::make_unique<torch::optim::AdamParamState>();
      auto it = entries.find("step");
      if (it != entries.end()) s->step(it->second.item<int64_t>());
      if ((it = entries.find("exp_avg")) != entries.end()) s->exp_avg(like(it->second));
      if ((it = entries.find("exp_avg_sq")) != entries.end()) s->exp_avg_sq(like(it->second));
      st[key_of(p)] = std::move(s);
    }
  }
}

}  // namespace qhost
