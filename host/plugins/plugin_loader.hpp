// plugin_loader.hpp - finds, checks and loads plugins (libqplug_<name>.so).
#pragma once

#include <qsdk/plugin_abi.h>
#include <qsdk/error.hpp>

#include <deque>
#include <string>
#include <vector>

namespace qhost {

class Registry;

/// A plugin that loaded, passed the stamp check and registered its components.
struct LoadedPlugin {
  std::string name;         ///< "lsq"
  std::string version;      ///< the plugin's own version
  std::string summary;      ///< one line
  std::string path;         ///< absolute path of the library
  qtool_build_stamp stamp;  ///< what it was built against (== host_stamp())
};

/// Loads plugins into a Registry. The search path, in order:
///   1. `--plugin-path` folders (add_cli_dirs),
///   2. `$QTOOL_PLUGIN_PATH` (colon list),
///   3. the experiment's `[plugins] path` (add_config_dirs),
///   4. the build tree's plugin folder when this executable runs from that build
///      tree, otherwise `<exe dir>/../lib/qtool/plugins` (the install folder).
/// `QTOOL_NO_DEFAULT_PLUGIN_PATH=1` drops folder 4 (for isolated tests and
/// for users who want exactly the folders they name). The current directory
/// is never searched implicitly. Libraries are opened
/// with rtld_now|rtld_local and never closed (their handles are deliberately
/// leaked): autograd nodes, module holders and deleters made by a plugin point
/// into its code for as long as any tensor lives, even during static destruction.
/// Load on the main thread, before any worker thread starts.
class PluginLoader {
 public:
  /// A loader registering into `registry`, with the environment and built-in
  /// folders on its search path.
  explicit PluginLoader(Registry& registry);
  /// A loader whose search path is exactly `dirs` (for tests).
  PluginLoader(Registry& registry, std::vector<std::string> dirs);

  /// Adds `--plugin-path` folders (each may be a colon list), searched first.
  void add_cli_dirs(const std::vector<std::string>& dirs);
  /// Adds the experiment's `[plugins] path` folders (already absolute).
  void add_config_dirs(const std::vector<std::string>& dirs);
  /// The folders searched, in order (duplicates removed).
  std::vector<std::string> search_path() const;

  /// Plugin names found on the search path (first folder wins; load() warns
  /// about the copies it shadows), sorted.
  std::vector<std::string> available() const;
  /// The library that `name` resolves to, or "" when none is found.
  std::string resolve(const std::string& name) const;

  /// Loads a plugin by name (searched) or by path (contains '/' or ends in .so;
  /// used as given). Loading the same plugin again returns the first load.
  /// Throws qsdk::Error(plugin) with the file, the reason and a fix.
  const LoadedPlugin& load(const std::string& name_or_path);
  /// Loads every plugin on the search path not loaded yet. Failures do not
  /// stop the others; they are returned (never silently skipped).
  std::vector<qsdk::Error> load_all();

  /// Plugins loaded so far, in load order (references stay valid).
  const std::deque<LoadedPlugin>& loaded() const { return loaded_; }

  /// The `libqplug_<name>.so` file name of a plugin name.
  static std::string file_name(const std::string& name);
  /// The plugin name of a `libqplug_<name>.so` path, or "" for another file name.
  static std::string name_of(const std::string& path);

 private:
  const LoadedPlugin& load_file(const std::string& path);
  void warn_if_shadowing(const std::string& name, const std::string& chosen) const;

  Registry& registry_;
  std::vector<std::string> cli_dirs_, env_dirs_, config_dirs_, builtin_dirs_;
  std::deque<LoadedPlugin> loaded_;  // deque: references stay valid
};

/// One stamp field in which a plugin differs from this qhost.
struct StampMismatch {
  std::string plugin;  ///< what the plugin was built for, e.g. "libtorch 1.12.0 (CPU)"
  std::string host;    ///< what this qhost uses, e.g. "libtorch 1.13.1 (CPU)"
};

/// Every field in which `plugin` differs from `host`, in check order (plugin
/// ABI, SDK, libtorch, cxx11-abi, CUDA); empty when they match.
std::vector<StampMismatch> stamp_mismatches(const qtool_build_stamp& plugin, const qtool_build_stamp& host);

}  // namespace qhost
