#include <torch/torch.h>

#include "test_support.hpp"

#include <qsdk/plugin_abi.h>

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

namespace qtest {

void TestRegistrar::add(qsdk::ComponentSpec spec) {
  if (specs_.count(spec.name)) throw std::runtime_error("duplicate component " + spec.name);
  spec.schema.check(spec.name);
  specs_.emplace(spec.name, std::move(spec));
}

const qsdk::ComponentSpec& TestRegistrar::get(const std::string& name) const {
  auto it = specs_.find(name);
  if (it == specs_.end()) throw std::runtime_error("component not registered: " + name);
  return it->second;
}

namespace {
struct Sink {
  qtool_error_sink sink;
  std::string message;
};
void sink_set(qtool_error_sink* self, const char* message) {
  static_cast<Sink*>(self->context)->message = message ? message : "";
}
}  // namespace

void load_plugin(const std::string& name, TestRegistrar& registrar) {
  const char* dir = std::getenv("QTOOL_PLUGIN_PATH");
  if (!dir) throw std::runtime_error("QTOOL_PLUGIN_PATH is not set");
  const std::string path = std::string(dir) + "/libqplug_" + name + ".so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw std::runtime_error("dlopen " + path + ": " + dlerror());
  auto entry = reinterpret_cast<qtool_plugin_entry_fn>(dlsym(handle, QTOOL_PLUGIN_ENTRY_SYMBOL));
  if (!entry) throw std::runtime_error(path + " has no " QTOOL_PLUGIN_ENTRY_SYMBOL);
  const qtool_plugin_info* info = entry();
  if (std::string(info->name) != name) throw std::runtime_error(path + " calls itself " + info->name);
  Sink sink;
  sink.sink.set = &sink_set;
  sink.sink.context = &sink;
  info->register_components(reinterpret_cast<qtool_registrar_handle*>(static_cast<qsdk::Registrar*>(&registrar)),
                            &sink.sink);
  if (!sink.message.empty()) throw std::runtime_error(name + ": " + sink.message);
}

TestRegistrar& model_registry() {
  static TestRegistrar* registry = [] {
    auto* r = new TestRegistrar();
    for (const char* name : {"torch_resnet", "resnet", "bireal_resnet", "groupnet_resnet", "prone_resnet",
                             "fixup_resnet"})
      load_plugin(name, *r);
    return r;
  }();
  return *registry;
}

TestQuantizer::TestQuantizer(const qsdk::Table& options, const qsdk::QuantizerContext& ctx) : ctx_(ctx) {
  if (auto it = options.find("bits"); it != options.end()) bits_ = it->second.as_int();
  if (auto it = options.find("offset"); it != options.end()) offset_ = it->second.as_double();
  clip_val_ = register_parameter("clip_val", torch::ones({1}));
}

torch::Tensor TestQuantizer::forward(const torch::Tensor& x) {
  const double n = static_cast<double>(int64_t{1} << bits_);
  // Straight-through rounding so gradients flow in the backward tests.
  torch::Tensor q = x + (torch::round(x * n) / n - x).detach();
  return q * clip_val_ + offset_;
}

qhost::QuantizerMaker QuantizerLog::maker() {
  return [this](const qsdk::Table& t, const qsdk::QuantizerContext& ctx) {
    contexts.push_back(ctx);
    tables.push_back(t);
    return std::make_shared<TestQuantizer>(t, ctx);
  };
}

std::shared_ptr<qsdk::ModelImpl> make_model(const std::string& name, const qsdk::Table& options,
                                            qsdk::LayerFactory& layers, int64_t num_classes,
                                            std::vector<int64_t> input_shape) {
  const auto& spec = model_registry().get(name);
  for (const auto& [key, value] : options)
    if (!spec.schema.find(key)) throw std::runtime_error(name + " has no option " + key);
  qsdk::ModelContext ctx;
  ctx.num_classes = num_classes;
  ctx.input_shape = std::move(input_shape);
  ctx.layers = &layers;
  return std::get<qsdk::ModelFactory>(spec.factory)(options, ctx);
}

std::map<std::string, std::vector<int64_t>> shapes(const torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace qtest
