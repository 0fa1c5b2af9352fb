// dlopen-based plugin loading for the quantizer tests.
#include "test_plugins.hpp"

#include <qsdk/plugin_abi.h>

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

namespace qtool_golden {

std::string plugin_dir() {
  const char* env = std::getenv("QTOOL_PLUGIN_PATH");
  if (env != nullptr && env[0] != '\0') {
    std::string s(env);
    return s.substr(0, s.find(':'));
  }
#ifdef QTOOL_TEST_PLUGIN_DIR
  return QTOOL_TEST_PLUGIN_DIR;
#else
  return "plugins";
#endif
}

TestRegistrar& TestRegistrar::instance() {
  static TestRegistrar* r = new TestRegistrar();  // leaked: plugin code must outlive every tensor
  return *r;
}

void TestRegistrar::add(qsdk::ComponentSpec spec) {
  if (spec.kind != qsdk::Kind::quantizer) return;
  spec.schema.check("quantizer/" + spec.name);
  if (specs_.count(spec.name)) throw std::runtime_error("duplicate quantizer " + spec.name);
  specs_.emplace(spec.name, std::move(spec));
}

namespace {
struct Sink {
  qtool_error_sink sink;
  std::string message;
};
void set_error(qtool_error_sink* self, const char* message) {
  static_cast<Sink*>(self->context)->message = message != nullptr ? message : "";
}
}  // namespace

void TestRegistrar::load(const std::string& name) {
  if (handles_.count(name)) return;
  const std::string path = plugin_dir() + "/libqplug_" + name + ".so";
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) throw std::runtime_error("dlopen " + path + ": " + dlerror());
  auto entry = reinterpret_cast<qtool_plugin_entry_fn>(dlsym(h, QTOOL_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) throw std::runtime_error(path + " has no " QTOOL_PLUGIN_ENTRY_SYMBOL);
  const qtool_plugin_info* info = entry();
  if (info->struct_size != sizeof(qtool_plugin_info) || info->stamp.plugin_abi != QTOOL_PLUGIN_ABI_VERSION)
    throw std::runtime_error(path + ": plugin ABI mismatch");
  if (std::string(info->name) != name) throw std::runtime_error(path + " calls itself " + info->name);
  Sink sink;
  sink.sink.set = &set_error;
  sink.sink.context = &sink;
  info->register_components(reinterpret_cast<qtool_registrar_handle*>(static_cast<qsdk::Registrar*>(this)),
                            &sink.sink);
  if (!sink.message.empty()) throw std::runtime_error(path + ": registration failed: " + sink.message);
  handles_[name] = h;
}

const qsdk::ComponentSpec& TestRegistrar::quantizer(const std::string& name) {
  if (!specs_.count(name)) load(name);
  auto it = specs_.find(name);
  if (it == specs_.end()) throw std::runtime_error("plugin " + name + " registered no quantizer " + name);
  return it->second;
}

std::shared_ptr<qsdk::QuantizerImpl> TestRegistrar::make(const std::string& name, const qsdk::Table& options,
                                                         const qsdk::QuantizerContext& ctx) {
  const auto& spec = quantizer(name);
  for (const auto& kv : options)
    if (spec.schema.find(kv.first) == nullptr)
      throw std::runtime_error("quantizer/" + name + " has no option " + kv.first);
  return std::get<qsdk::QuantizerFactory>(spec.factory)(options, ctx);
}

}  // namespace qtool_golden
