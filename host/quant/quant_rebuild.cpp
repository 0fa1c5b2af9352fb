// (schedule) Rebuilding quantizers after a [[schedule]] change of [quant] options.
#include <torch/torch.h>

#include "quant/quant_rebuild.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

namespace qhost {

struct QuantRebuilder::Slot {
  std::string path;
  qsdk::LayerRole role = qsdk::LayerRole::body;
  qsdk::QuantTarget target = qsdk::QuantTarget::weight;
  qsdk::QuantizerContext ctx;
  std::shared_ptr<qsdk::QuantizerImpl> current;
  qsdk::Table table;  // the resolved table `current` was made from
  std::function<void(std::shared_ptr<qsdk::QuantizerImpl>)> replace;
};

namespace {

[[noreturn]] void fail(const std::string& place, const std::string& message, const std::string& hint = "") {
  throw qsdk::Error(qsdk::ErrorCategory::runtime, place, message, hint);
}

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream o;
  o << t.sizes();
  return o.str();
}

void count(std::vector<RebuildReport::Count>& list, const std::string& label) {
  for (auto& c : list)
    if (c.label == label) {
      ++c.n;
      return;
    }
  list.push_back({label, 1});
}

// Every parameter and buffer of a quantizer by name (they never share names).
std::map<std::string, torch::Tensor> state_of(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

torch::Device device_of(const torch::nn::Module& m) {
  for (const auto& p : m.parameters(true)) return p.device();
  for (const auto& b : m.buffers(true)) return b.device();
  return torch::Device(torch::kCPU);
}

// Holds the global CPU generator's state; rewinds it before each construction
// and restores it at the end, so the fresh quantizers see the same random draws
// and the run's own random sequence is untouched.
class RngRewind {
 public:
  RngRewind() : gen_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    state_ = gen_.get_state();
  }
  ~RngRewind() { rewind(); }
  void rewind() {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state_);
  }

 private:
  at::Generator gen_;
  torch::Tensor state_;
};

}  // namespace

std::string RebuildReport::summary() const {
  std::string s = "rebuilt " + std::to_string(rebuilt) + " quantizer" + (rebuilt == 1 ? "" : "s");
  auto list = [](const std::vector<Count>& v) {
    std::string o;
    for (const auto& c : v) {
      const auto paren = c.label.find(" (");
      const std::string n = std::to_string(c.n) + (c.n == 1 ? " quantizer" : " quantizers");
      o += (o.empty() ? "" : ", ") +
           (paren == std::string::npos ? c.label + " (" + n + ")"
                                       : c.label.substr(0, paren) + " (" + n + ": " + c.label.substr(paren + 2));
    }
    return o;
  };
  if (!carried.empty()) s += "; carried over: " + list(carried);
  if (!reinitialised.empty()) s += "; re-initialised: " + list(reinitialised);
  if (!dropped.empty()) s += "; dropped: " + list(dropped);
  return s;
}

QuantRebuilder::QuantRebuilder(const LayerFactory& factory, std::shared_ptr<torch::nn::Module> model)
    : policy_(factory.policy()), make_(factory.quantizer_maker()), model_(std::move(model)) {
  std::map<std::string, qsdk::LayerRole> roles;
  for (const auto& r : factory.records()) roles[r.path] = r.role;
  // The contexts mirror LayerFactory::make_quantizers (layer_factory.cpp).
  auto add = [&](const std::string& path, qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> q,
                 std::vector<int64_t> shape, std::function<void(std::shared_ptr<qsdk::QuantizerImpl>)> replace) {
    if (!q) return;
    auto role = roles.find(path);
    if (role == roles.end()) fail(path, "quantized layer unknown to the layer factory");
    Slot s;
    s.path = path;
    s.role = role->second;
    s.target = target;
    s.ctx.target = target;
    s.ctx.shape = std::move(shape);
    s.ctx.module_path = path;
    s.ctx.role = role->second;
    s.ctx.batch_size = factory.batch_size();
    s.ctx.input_size = factory.input_size();
    s.current = std::move(q);
    auto table = policy_.resolve(path, s.role, target);
    if (!table) fail(path, std::string("has a ") + qsdk::to_string(target) + " quantizer that [quant] does not give it");
    s.table = *table;
    s.replace = std::move(replace);
    slots_.push_back(std::move(s));
  };
  for (const auto& item : model_->named_modules("", false)) {
    const auto& m = item.value();
    if (auto conv = std::dynamic_pointer_cast<QuantConv2dImpl>(m)) {
      const auto& o = conv->options();
      const auto& q = conv->quantizers();
      std::vector<int64_t> w{o.out_channels(), o.in_channels()};
      for (int64_t k : *o.kernel_size()) w.push_back(k);
      auto replace = [conv](qsdk::QuantTarget t) {
        return [conv, t](std::shared_ptr<qsdk::QuantizerImpl> n) { conv->replace_quantizer(t, std::move(n)); };
      };
      const auto& path = conv->module_path();
      add(path, qsdk::QuantTarget::weight, q.weight, w, replace(qsdk::QuantTarget::weight));
      add(path, qsdk::QuantTarget::activation, q.activation, {1, o.in_channels(), 1, 1},
          replace(qsdk::QuantTarget::activation));
      add(path, qsdk::QuantTarget::output, q.output, {1, o.out_channels(), 1, 1}, replace(qsdk::QuantTarget::output));
    } else if (auto lin = std::dynamic_pointer_cast<QuantLinearImpl>(m)) {
      const auto& q = lin->quantizers();
      const int64_t out = lin->weight().size(0), in = lin->weight().size(1);
      auto replace = [lin](qsdk::QuantTarget t) {
        return [lin, t](std::shared_ptr<qsdk::QuantizerImpl> n) { lin->replace_quantizer(t, std::move(n)); };
      };
      const auto& path = lin->module_path();
      add(path, qsdk::QuantTarget::weight, q.weight, {1, 1, out, in}, replace(qsdk::QuantTarget::weight));
      add(path, qsdk::QuantTarget::activation, q.activation, {1, in, 1, 1}, replace(qsdk::QuantTarget::activation));
      add(path, qsdk::QuantTarget::output, q.output, {1, out, 1, 1}, replace(qsdk::QuantTarget::output));
    }
  }
}

QuantRebuilder::~QuantRebuilder() = default;

size_t QuantRebuilder::size() const { return slots_.size(); }

qsdk::Value QuantRebuilder::set_option(const std::string& key, const qsdk::Value& value) {
  const auto parsed = QuantKey::parse(key);
  if (!parsed.key) fail("quant." + key, parsed.message, parsed.hint);
  return policy_.set_option(*parsed.key, value);
}

RebuildReport QuantRebuilder::rebuild() {
  RebuildReport report;
  for (auto& s : slots_) {
    auto table = policy_.resolve(s.path, s.role, s.target);
    if (!table) fail(s.path, "a schedule cannot remove a quantizer");
    if (*table == s.table) continue;
    std::shared_ptr<qsdk::QuantizerImpl> fresh_old, fresh;
    {
      RngRewind rng;
      fresh_old = make_(s.table, s.ctx);
      rng.rewind();
      fresh = make_(*table, s.ctx);
    }
    if (!fresh || !fresh_old) fail(s.path, "the quantizer maker returned nothing");
    const auto ref = state_of(*fresh_old);
    const auto old = state_of(*s.current);
    fresh->to(device_of(*s.current));
    fresh->train(s.current->is_training());
    std::vector<std::string> seen;
    for (auto& [name, value] : state_of(*fresh)) {
      seen.push_back(name);
      auto o = old.find(name);
      std::string why;
      if (o == old.end()) {
        why = name + " (new)";
      } else if (o->second.sizes() != value.sizes()) {
        why = name + " (new shape)";
        spdlog::debug("{} {} quantizer: {} shape {} -> {}", s.path, qsdk::to_string(s.target), name,
                      shape_str(o->second), shape_str(value));
      } else {
        auto r = ref.find(name);
        if (r != ref.end() && r->second.sizes() == value.sizes() &&
            !torch::equal(r->second.to(torch::kCPU), value.to(torch::kCPU))) {
          why = name + " (its initial value depends on the changed option)";
        } else {
          torch::NoGradGuard no_grad;
          value.copy_(o->second);
          count(report.carried, name);
          continue;
        }
      }
      count(report.reinitialised, why);
      spdlog::debug("{} {} quantizer: {} re-initialised", s.path, qsdk::to_string(s.target), why);
    }
    for (const auto& [name, value] : old)
      if (std::find(seen.begin(), seen.end(), name) == seen.end()) count(report.dropped, name);
    s.replace(fresh);
    s.current = std::move(fresh);
    s.table = std::move(*table);
    ++report.rebuilt;
  }
  return report;
}

}  // namespace qhost
