// config.hpp - an experiment's TOML: `extends`, `--set`, source locations,
// validation of every section against its schema, resolved.toml.
#pragma once

#include "quant/quant_policy.hpp"

#include <qsdk/value.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace qhost {

class Registry;
class PluginLoader;

/// Where a key or value came from.
struct SourceLocation {
  std::string file;  ///< TOML file, or "--set a.b=c" for a command-line override
  int line = 0;      ///< 1-based; 0 = unknown
  int column = 0;    ///< 1-based; 0 = unknown
  /// "file:line:column", or "file" when the line is unknown.
  std::string str() const;
};

/// One validation problem.
struct ConfigProblem {
  SourceLocation where;  ///< the offending value (or its table)
  std::string key;       ///< dotted key, e.g. "quant.weight.bits", "trick[1].type"
  std::string message;   ///< what is wrong, quoting the offending value
  std::string hint;      ///< how to fix it (may be empty)
  /// "file:line:col: key: message (hint: ...)"
  std::string str() const;
};

/// An experiment configuration.
///
/// Keys are addressed by dotted paths; elements of arrays by `[i]`, e.g.
/// `trick[0].type` or `quant.override[1].weight`. After validate(), root()
/// holds every section with every default explicit, integers in float
/// options converted, `[plugins] path` made absolute, `[experiment] name`
/// filled with the file stem when empty, and every `[[quant.override]]`
/// quantizer table that had no `type` already merged onto its default.
class Config {
 public:
  /// Parses `path`, follows `extends` (a string or list of strings, relative
  /// to the file that holds it; tables deep-merged, arrays replaced; later
  /// bases win, the file itself wins over its bases) and applies `--set
  /// a.b=c` overrides (value parsed as TOML; anything else is a string).
  /// Throws qsdk::Error(config) with file:line:col on syntax errors, missing
  /// or circular `extends`; qsdk::Error(usage) on a malformed --set.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// Same from TOML text (e.g. the resolved.toml stored in a checkpoint);
  /// `origin` names it in messages. `extends` is resolved against the
  /// current directory.
  static Config from_string(const std::string& toml_text, const std::string& origin,
                            const std::vector<std::string>& overrides = {});

  /// `--synthetic`: replaces the [data] reader by dataset/synthetic of the
  /// same sample shape and class count (synthetic_stand_in), adds the
  /// synthetic plugin to a non-empty `[plugins] load`, and marks the config
  /// so that absent checkpoints it names (train.init_from, a kd teacher) leave
  /// their network at its initialisation with a warning instead of failing.
  /// Call after load() and before validate(). Throws qsdk::Error(config).
  void use_synthetic_data();
  /// Whether use_synthetic_data() was called; what the stand-in is.
  bool synthetic() const { return !synthetic_note_.empty(); }
  const std::string& synthetic_note() const { return synthetic_note_; }

  /// The configuration (after validate(): every default explicit).
  const qsdk::Table& root() const { return root_; }
  /// The typed `[quant]` policy of the validated configuration, the one the
  /// layer factory, the schedule and the rebuild use (empty before validate()).
  const QuantPolicy& quant_policy() const { return quant_policy_; }
  /// The file it came from ("" for from_string).
  const std::string& path() const { return path_; }
  /// Best known place of `dotted_key`: the key itself, else its nearest
  /// enclosing table, else the file.
  SourceLocation location(const std::string& dotted_key) const;
  /// Absolute folder that relative paths in `dotted_key` are relative to: the
  /// folder of the file that wrote the key (a base of `extends` included), or
  /// the current folder for `--set` overrides and from_string text.
  std::string base_dir(const std::string& dotted_key) const;
  /// `path` (the value of `dotted_key`) made absolute against base_dir();
  /// "" and absolute paths are returned as they are.
  std::string resolve_path(const std::string& dotted_key, const std::string& path) const;

  /// Loads the plugins `[plugins] load` names (every plugin on the search
  /// path when it is empty, or always with `load_everything`, as `qhost
  /// check` does so unknown names get suggestions from everything installed)
  /// with `[plugins] path` added to the loader's search path, then validates
  /// every section. A component provided by a plugin that a non-empty
  /// `[plugins] load` leaves out is a problem. Throws qsdk::Error(plugin) when
  /// a plugin fails to load, or one qsdk::Error(config) listing ALL problems,
  /// each "file:line:col: key: message (hint: ...)".
  void validate(Registry& registry, PluginLoader& loader, bool load_everything = false);
  /// Validates against what `registry` holds, loading nothing; returns the
  /// problems (empty = valid, and then root() is the resolved configuration).
  std::vector<ConfigProblem> check(const Registry& registry, const PluginLoader* loader = nullptr);

  /// The resolved.toml text: sections in a fixed order, every value explicit,
  /// with a comment header naming the source and the loaded plugins.
  std::string to_toml() const;

 private:
  friend class ConfigBuilder;
  qsdk::Table root_;
  QuantPolicy quant_policy_;  // parsed from root_'s [quant] when check() accepts it
  std::map<std::string, SourceLocation> locations_;
  std::string path_;
  std::string origin_;
  std::set<std::string> files_;  // every file read (itself and its bases), as named in locations_
  std::vector<std::string> plugin_notes_;  // "name version (path)" for the header
  std::string synthetic_note_;             // set by use_synthetic_data()
};

/// Renders a table as TOML (used by to_toml; exposed for tests and checkpoints).
std::string to_toml_text(const qsdk::Table& root, const std::vector<std::string>& section_order = {});

/// A path from the TOML: as given when it exists (or is absolute), else
/// relative to the folder of the file `config` was read from (config_paths.cpp).
std::string resolve_config_path(const std::string& path, const Config& config);

/// Under --synthetic an experiment runs without its files: true, with a
/// warning, when `path` (a checkpoint to load into the network `what`) does
/// not exist, so that network keeps its initialisation. False otherwise.
bool skipped_for_synthetic(const Config& config, const std::string& path, const char* what);

}  // namespace qhost
