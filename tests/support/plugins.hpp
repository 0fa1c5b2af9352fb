// plugins.hpp - the one way tests load plugins: the host's own PluginLoader and
// Registry (stamp checked, schema checked, staged registration), never a
// private dlopen.
#pragma once

#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

#include <qsdk/kind.hpp>
#include <qsdk/registrar.hpp>

#include <string>

namespace qtool_test {

/// The plugin folder the tests load from: the first entry of
/// $QTOOL_PLUGIN_PATH (CTest sets it to the build's plugin folder), else the
/// build's plugin folder compiled in.
std::string plugin_dir();

/// A process-wide qhost::Registry filled by a qhost::PluginLoader whose search
/// path is exactly plugin_dir(). Neither is ever destroyed: the factories and
/// every module a plugin builds point into its code (plugins are never
/// unloaded, docs/plugin-contract.md#plugins-are-never-unloaded). Thread-safe.
class TestPlugins {
 public:
  /// The instance (created on first use).
  static TestPlugins& instance();

  /// Loads plugin `name` once, as qhost does (stamp checked before any of its
  /// code runs). Throws qsdk::Error(plugin) with the file and the reason.
  const qhost::LoadedPlugin& load(const std::string& name);
  /// The spec of component `kind`/`name`, loading plugin `plugin` first
  /// (default: the plugin named like the component). Throws qsdk::Error
  /// (plugin when loading fails, config when the plugin does not register it).
  const qsdk::ComponentSpec& spec(qsdk::Kind kind, const std::string& name, const std::string& plugin = "");
  /// The registry (for Registry::make_* and describe).
  qhost::Registry& registry() { return *registry_; }

 private:
  TestPlugins();
  qhost::Registry* registry_;
  qhost::PluginLoader* loader_;
};

}  // namespace qtool_test
