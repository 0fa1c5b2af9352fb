// plugin_harness.cpp - see plugin_harness.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "plugin_harness.hpp"

#include <qsdk/plugin_abi.h>

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace qdata_test {
namespace {

class CapturingRegistrar : public qsdk::Registrar {
 public:
  void add(qsdk::ComponentSpec spec) override { specs.push_back(std::move(spec)); }
  std::vector<qsdk::ComponentSpec> specs;
};

struct Loaded {
  CapturingRegistrar registrar;
};

void sink_set(qtool_error_sink* self, const char* message) {
  *static_cast<std::string*>(self->context) = message ? message : "";
}

}  // namespace

std::string plugin_dir() {
  if (const char* env = std::getenv("QTOOL_PLUGIN_PATH")) {
    std::string s = env;
    const auto colon = s.find_first_of(":;");
    if (!s.empty()) return colon == std::string::npos ? s : s.substr(0, colon);
  }
  return QDATA_PLUGIN_DIR;
}

const qsdk::ComponentSpec& dataset_spec(const std::string& plugin, const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Loaded>>* loaded = new std::map<std::string, std::unique_ptr<Loaded>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded->find(plugin);
  if (it == loaded->end()) {
    const std::string path = plugin_dir() + "/libqplug_" + plugin + ".so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed
    if (!handle) throw std::runtime_error("dlopen " + path + ": " + dlerror());
    auto entry = reinterpret_cast<qtool_plugin_entry_fn>(dlsym(handle, QTOOL_PLUGIN_ENTRY_SYMBOL));
    if (!entry) throw std::runtime_error(path + " has no " QTOOL_PLUGIN_ENTRY_SYMBOL);
    const qtool_plugin_info* info = entry();
    auto l = std::make_unique<Loaded>();
    std::string error;
    qtool_error_sink sink{&sink_set, &error};
    info->register_components(reinterpret_cast<qtool_registrar_handle*>(static_cast<qsdk::Registrar*>(&l->registrar)),
                              &sink);
    if (!error.empty()) throw std::runtime_error(path + " registration failed: " + error);
    it = loaded->emplace(plugin, std::move(l)).first;
  }
  for (const auto& spec : it->second->registrar.specs)
    if (spec.kind == qsdk::Kind::dataset && spec.name == name) return spec;
  throw std::runtime_error("plugin " + plugin + " registered no dataset '" + name + "'");
}

std::shared_ptr<qsdk::Dataset> make_dataset(const std::string& plugin, const std::string& name,
                                            const qsdk::Table& options, bool train, uint64_t seed) {
  const auto& spec = dataset_spec(plugin, name);
  qsdk::Table table = spec.schema.defaults();
  for (const auto& [k, v] : options) {
    if (!spec.schema.find(k)) throw std::runtime_error("option '" + k + "' not in the schema of " + name);
    table[k] = v;
  }
  qsdk::DatasetContext ctx;
  ctx.train = train;
  ctx.seed = seed;
  return std::get<qsdk::DatasetFactory>(spec.factory)(table, ctx);
}

}  // namespace qdata_test
