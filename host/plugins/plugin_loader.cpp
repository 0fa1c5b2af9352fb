#include "plugins/plugin_loader.hpp"

#include "platform/errors.hpp"
#include "platform/version_info.hpp"
#include "plugins/plugin_stamp.hpp"
#include "plugins/registry.hpp"

#include <qsdk/version.hpp>

#include <spdlog/spdlog.h>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

namespace fs = std::filesystem;

namespace qhost {

namespace {
using qsdk::ErrorCategory;

constexpr const char* kPrefix = "libqplug_";
constexpr const char* kSuffix = ".so";

// Never destroyed, so dlclose never runs, not even from static destructors at
// exit (see docs/plugin-contract.md#plugins-are-never-unloaded).
std::vector<boost::dll::shared_library>& resident_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>;
  return *libraries;
}

std::vector<std::string> split_colon_list(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) out.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string absolute(const std::string& p) {
  std::error_code ec;
  auto a = fs::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

// The qhost of the build tree searches the build tree's plugin folder;
// any other (an installed qhost) searches <exe dir>/../lib/qtool/plugins. So
// an installed qhost never picks up stale build outputs, and a build-tree
// qhost never mixes in an older installed copy.
std::vector<std::string> builtin_dirs() {
  std::vector<std::string> out;
  std::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  if (ec) return out;
  // The qhost built in the build tree (not a copy installed somewhere, even
  // into a prefix inside the build tree).
  if (exe.parent_path().lexically_normal() == fs::path(QTOOL_BUILD_EXE_DIR).lexically_normal())
    out.push_back(QTOOL_BUILD_PLUGIN_DIR);
  else
    out.push_back((exe.parent_path().parent_path() / QTOOL_INSTALL_PLUGIN_SUBDIR).lexically_normal().string());
  return out;
}

std::string rebuild_hint(const std::string& name) {
  return "rebuild the plugin against this qtool: in the qtool build tree `cmake --build <build dir> --target qplug_" +
         name + "`; out of tree, configure it with -DCMAKE_PREFIX_PATH=<this qtool's install prefix> and rebuild";
}

// Every stamp field that differs, in one message; another plugin ABI alone,
// since the other fields may mean something else there.
void throw_if_mismatched(const std::string& path, const std::string& plugin, const qtool_build_stamp& stamp,
                         const qtool_build_stamp& host) {
  auto mismatches = stamp_mismatches(stamp, host);
  if (mismatches.empty()) return;
  if (stamp.plugin_abi != host.plugin_abi) mismatches.resize(1);
  std::vector<std::string> built, uses;
  for (const auto& m : mismatches) {
    built.push_back(m.plugin);
    uses.push_back(m.host);
  }
  // A stamp of another plugin ABI carries no compiler we can read: say nothing
  // rather than "unknown".
  const bool known = stamp.compiler && *stamp.compiler;
  std::string compilers =
      known ? std::string(" (plugin compiled with ") + stamp.compiler + ", qhost with " + host.compiler + ")" : "";
  throw qsdk::Error(ErrorCategory::plugin, path,
                    "plugin '" + plugin + "' was built for " + join(built) + "; this qhost uses " + join(uses) +
                        compilers,
                    rebuild_hint(plugin));
}

// Its declared name must be its file name, which is how users ask for it.
[[noreturn]] void throw_name_mismatch(const std::string& path, const std::string& file_plugin,
                                      const std::string& declared) {
  throw qsdk::Error(
      ErrorCategory::plugin, path,
      "file is named for plugin '" + file_plugin + "' but the plugin declares itself as '" + declared + "'",
      "rename the file to " + PluginLoader::file_name(declared) + " or change the name in QSDK_PLUGIN(\"" + declared +
          "\", ...)");
}

struct ErrorSink {
  qtool_error_sink sink{&ErrorSink::set, nullptr};
  std::string message;
  bool failed = false;
  static void set(qtool_error_sink* self, const char* text) {
    auto* me = static_cast<ErrorSink*>(self->context);
    me->failed = true;
    me->message = text ? text : "(no message)";
  }
};
}  // namespace

std::vector<StampMismatch> stamp_mismatches(const qtool_build_stamp& p, const qtool_build_stamp& h) {
  std::vector<StampMismatch> out;
  auto num = [](uint32_t v) { return std::to_string(v); };
  if (p.plugin_abi != h.plugin_abi)
    out.push_back({"plugin ABI " + num(p.plugin_abi), "plugin ABI " + num(h.plugin_abi)});
  if (p.sdk_version != h.sdk_version)
    out.push_back({"SDK " + qsdk::version_string(p.sdk_version), "SDK " + qsdk::version_string(h.sdk_version)});
  if (p.torch_version != h.torch_version || p.torch_cuda != h.torch_cuda)
    out.push_back({"libtorch " + torch_description(p), "libtorch " + torch_description(h)});
  if (p.glibcxx_cxx11_abi != h.glibcxx_cxx11_abi)
    out.push_back({"cxx11-abi " + num(p.glibcxx_cxx11_abi), "cxx11-abi " + num(h.glibcxx_cxx11_abi)});
  return out;
}

PluginLoader::PluginLoader(Registry& registry) : registry_(registry) {
  const char* no_default = std::getenv("QTOOL_NO_DEFAULT_PLUGIN_PATH");
  if (!no_default || std::string(no_default).empty() || std::string(no_default) == "0") builtin_dirs_ = builtin_dirs();
  if (const char* env = std::getenv("QTOOL_PLUGIN_PATH"))
    for (const auto& d : split_colon_list(env)) env_dirs_.push_back(absolute(d));
}

PluginLoader::PluginLoader(Registry& registry, std::vector<std::string> dirs) : registry_(registry) {
  for (const auto& d : dirs) builtin_dirs_.push_back(absolute(d));
}

void PluginLoader::add_cli_dirs(const std::vector<std::string>& dirs) {
  for (const auto& list : dirs)
    for (const auto& d : split_colon_list(list)) cli_dirs_.push_back(absolute(d));
}

void PluginLoader::add_config_dirs(const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) config_dirs_.push_back(absolute(d));
}

std::vector<std::string> PluginLoader::search_path() const {
  std::vector<std::string> out;
  for (const auto* list : {&cli_dirs_, &env_dirs_, &config_dirs_, &builtin_dirs_})
    for (const auto& d : *list)
      if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  return out;
}

std::string PluginLoader::file_name(const std::string& name) { return kPrefix + name + kSuffix; }

std::string PluginLoader::name_of(const std::string& path) {
  std::string f = fs::path(path).filename().string();
  const size_t np = std::strlen(kPrefix), ns = std::strlen(kSuffix);
  if (f.size() <= np + ns || f.compare(0, np, kPrefix) != 0 || f.compare(f.size() - ns, ns, kSuffix) != 0) return "";
  return f.substr(np, f.size() - np - ns);
}

std::vector<std::string> PluginLoader::available() const {
  std::set<std::string> names;
  for (const auto& dir : search_path()) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string n = name_of(entry.path().string());
      if (!n.empty() && entry.is_regular_file(ec)) names.insert(n);
    }
  }
  return {names.begin(), names.end()};
}

// A stale installed copy earlier on the search path silently hiding a fresh
// build is a classic time sink: name every other copy (the same file reached
// twice through links is not a copy).
void PluginLoader::warn_if_shadowing(const std::string& name, const std::string& chosen) const {
  std::vector<std::string> others;
  for (const auto& dir : search_path()) {
    fs::path p = fs::path(dir) / file_name(name);
    std::error_code ec;
    if (p.string() == chosen || !fs::is_regular_file(p, ec) || fs::equivalent(p, chosen, ec)) continue;
    others.push_back(p.string());
  }
  if (!others.empty())
    spdlog::warn("plugin '{}' is on the search path more than once: loading {}, not {} (the first folder wins; remove "
                 "the copy you do not want, or reorder --plugin-path / $QTOOL_PLUGIN_PATH)",
                 name, chosen, join(others));
}

std::string PluginLoader::resolve(const std::string& name) const {
  for (const auto& dir : search_path()) {
    fs::path p = fs::path(dir) / file_name(name);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

const LoadedPlugin& PluginLoader::load(const std::string& name_or_path) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 3 && name_or_path.compare(name_or_path.size() - 3, 3, ".so") == 0);
  if (is_path) return load_file(absolute(name_or_path));
  for (const auto& p : loaded_)
    if (p.name == name_or_path) return p;
  std::string path = resolve(name_or_path);
  if (path.empty()) {
    auto dirs = search_path();
    auto names = available();
    std::string hint = did_you_mean(name_or_path, names);
    if (!hint.empty()) hint += " ";
    hint += names.empty() ? "no plugins were found at all; add a folder with --plugin-path or $QTOOL_PLUGIN_PATH"
                          : "available plugins: " + join(names);
    throw qsdk::Error(
        ErrorCategory::plugin, "",
        "plugin '" + name_or_path + "' (" + file_name(name_or_path) + ") not found in [" + join(dirs) + "]", hint);
  }
  warn_if_shadowing(name_or_path, path);
  return load_file(path);
}

const LoadedPlugin& PluginLoader::load_file(const std::string& path) {
  for (const auto& p : loaded_)
    if (p.path == path) return p;
  const std::string file_plugin = name_of(path);
  if (file_plugin.empty())
    throw qsdk::Error(ErrorCategory::plugin, path, "is not named like a qtool plugin",
                      "plugin files are called libqplug_<name>.so");
  for (const auto& p : loaded_)
    if (p.name == file_plugin)
      throw qsdk::Error(ErrorCategory::plugin, path, "plugin '" + file_plugin + "' is already loaded from " + p.path,
                        "keep only one copy of it on the plugin search path");
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw qsdk::Error(ErrorCategory::plugin, path, "no such plugin file", "check the path");
  const qtool_build_stamp host = host_stamp();

  // 1. The stamp note, read from the file: nothing of the plugin has run yet.
  const qtool_plugin_stamp_note note = read_stamp_note(path);
  const qtool_build_stamp noted{note.plugin_abi,        note.sdk_version, note.torch_version,
                                note.glibcxx_cxx11_abi, note.torch_cuda,  note.compiler[0] ? note.compiler : nullptr};
  throw_if_mismatched(path, file_plugin, noted, host);
  const std::string noted_name = note.name;
  if (noted_name != file_plugin) throw_name_mismatch(path, file_plugin, noted_name);

  // 2. Its static initialisers, in a child process: one that throws would
  // otherwise end qhost in std::terminate inside dlopen.
  probe_static_initialisers(path, file_plugin);

  // rtld_now: unresolved symbols fail here rather than mid-training;
  // rtld_local: plugins cannot interpose each other's symbols.
  boost::dll::shared_library lib;
  try {
    lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw qsdk::Error(ErrorCategory::plugin, path, std::string("cannot be loaded: ") + e.what(),
                      "the library or one of its dependencies is missing or was built for another system; " +
                          rebuild_hint(file_plugin));
  }
  resident_libraries().push_back(lib);  // from here on it is never closed
  if (!lib.has(QTOOL_PLUGIN_ENTRY_SYMBOL))
    throw qsdk::Error(ErrorCategory::plugin, path,
                      std::string("is not a qtool plugin (no entry point '") + QTOOL_PLUGIN_ENTRY_SYMBOL + "')",
                      "a plugin defines its entry with QSDK_PLUGIN(\"" + file_plugin +
                          "\", \"<version>\", \"<summary>\") { ... } from <qsdk/plugin.hpp>");
  auto entry = lib.get<const qtool_plugin_info*()>(QTOOL_PLUGIN_ENTRY_SYMBOL);
  const qtool_plugin_info* info = entry();  // returns a constant struct; runs no user code
  if (!info)
    throw qsdk::Error(ErrorCategory::plugin, path, "entry point returned no plugin description",
                      rebuild_hint(file_plugin));

  // 3. The struct must be large enough for what we read.
  if (info->struct_size < sizeof(qtool_plugin_info))
    throw qsdk::Error(ErrorCategory::plugin, path,
                      "plugin '" + file_plugin + "' has a " + std::to_string(info->struct_size) +
                          "-byte plugin description; this qhost (plugin ABI " + std::to_string(host.plugin_abi) +
                          ") needs " + std::to_string(sizeof(qtool_plugin_info)) + " bytes",
                      rebuild_hint(file_plugin));
  // 4. The stamp and name again, as the entry reports them (a hand-written
  // entry could disagree with its note).
  throw_if_mismatched(path, file_plugin, info->stamp, host);
  const std::string declared = info->name ? info->name : "";
  if (declared != file_plugin) throw_name_mismatch(path, file_plugin, declared);
  if (!info->register_components)
    throw qsdk::Error(ErrorCategory::plugin, path, "plugin '" + declared + "' has no registration function",
                      rebuild_hint(declared));

  // 5. Register: staged, and committed only if the whole callback succeeded.
  LoadedPlugin plugin{declared, info->version ? info->version : "", info->summary ? info->summary : "", path,
                      info->stamp};
  registry_.begin_plugin(Provider{plugin.name, plugin.version, plugin.path});
  ErrorSink sink;
  sink.sink.context = &sink;
  info->register_components(reinterpret_cast<qtool_registrar_handle*>(static_cast<qsdk::Registrar*>(&registry_)),
                            &sink.sink);
  if (sink.failed) {
    registry_.abort_plugin();
    throw qsdk::Error(ErrorCategory::plugin, path,
                      "plugin '" + declared + "' failed to register its components: " + sink.message,
                      // An SDK error already carries its own hint.
                      sink.message.find("(hint: ") != std::string::npos
                          ? ""
                          : "fix the plugin's QSDK_PLUGIN body (`qhost check-plugin " + path + "` repeats this check)");
  }
  try {
    registry_.commit_plugin();
  } catch (...) {
    registry_.abort_plugin();
    throw;
  }
  spdlog::debug("loaded plugin '{}' {} from {}", plugin.name, plugin.version, plugin.path);
  loaded_.push_back(std::move(plugin));
  return loaded_.back();
}

std::vector<qsdk::Error> PluginLoader::load_all() {
  std::vector<qsdk::Error> errors;
  for (const auto& name : available()) {
    try {
      load(name);
    } catch (const qsdk::Error& e) {
      errors.push_back(e);
    }
  }
  return errors;
}

}  // namespace qhost
