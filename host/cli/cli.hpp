// cli.hpp - the qhost command line (Boost.Program_options).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include <qsdk/kind.hpp>

namespace qhost {

class Registry;
class PluginLoader;

/// Parses argv and runs one command (list, describe, check, check-plugin, run,
/// eval); returns the exit code. Throws qsdk::Error (usage, config, plugin,
/// ...) for report_errors() to print.
int cli_main(int argc, char** argv);

/// `qhost list`: every component, grouped by kind, with its provider.
void print_components(std::ostream& out, const Registry& registry, std::optional<qsdk::Kind> kind);
/// `qhost describe kind/name` (or a host section name such as `data`).
/// Throws qsdk::Error(usage/config) for a malformed or unknown key.
void print_description(std::ostream& out, const Registry& registry, const std::string& what);
/// `qhost check-plugin`: loads `name_or_path` and exercises every component it
/// registered; prints one line per check. Throws qsdk::Error(plugin) listing
/// every failure.
void check_plugin(std::ostream& out, Registry& registry, PluginLoader& loader, const std::string& name_or_path);

}  // namespace qhost
