#include "plugins.hpp"

#include <cstdlib>
#include <mutex>

namespace qtool_test {

namespace {
std::mutex& plugins_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
}  // namespace

std::string plugin_dir() {
  if (const char* env = std::getenv("QTOOL_PLUGIN_PATH"); env != nullptr && env[0] != '\0') {
    const std::string s(env);
    return s.substr(0, s.find(':'));
  }
  return QTOOL_TEST_SUPPORT_PLUGIN_DIR;
}

// Leaked on purpose (see the class comment).
TestPlugins::TestPlugins()
    : registry_(new qhost::Registry), loader_(new qhost::PluginLoader(*registry_, {plugin_dir()})) {}

TestPlugins& TestPlugins::instance() {
  static auto* plugins = new TestPlugins;
  return *plugins;
}

const qhost::LoadedPlugin& TestPlugins::load(const std::string& name) {
  std::lock_guard<std::mutex> lock(plugins_mutex());
  return loader_->load(name);
}

const qsdk::ComponentSpec& TestPlugins::spec(qsdk::Kind kind, const std::string& name, const std::string& plugin) {
  load(plugin.empty() ? name : plugin);
  std::lock_guard<std::mutex> lock(plugins_mutex());
  return registry_->get(kind, name).spec;
}

}  // namespace qtool_test
