// sweep.hpp - `qhost sweep SWEEP.toml`: every point of a grid of overrides
// run as its own `qhost run` child process.
#pragma once

#include <qsdk/value.hpp>

#include <string>
#include <utility>
#include <vector>

namespace qhost {

/// (dotted key, value) overrides, in order.
using Overrides = std::vector<std::pair<std::string, qsdk::Value>>;

/// One point of a sweep: the overrides of its variant, its zip choice and its
/// grid values, and the name parts of its folder.
struct SweepPoint {
  std::string variant;  ///< the [[variant]]'s name, "" in a sweep without variants
  Overrides set;        ///< every override, variant's first (later ones win)
  Overrides label;      ///< the zip and grid keys with their values, for the folder name
};

/// A named set of overrides (`[[variant]] name = "...", set = {...}`).
struct SweepVariant {
  std::string name;
  Overrides set;
};

/// A parsed sweep file.
struct SweepSpec {
  std::string file;                   ///< the sweep TOML
  std::string base;                   ///< experiment file (absolute or cwd-relative)
  std::string out_dir;                ///< parent of the point folders
  std::string name;                   ///< the base experiment's name
  std::vector<SweepVariant> variants; ///< [[variant]] entries (may be empty)
  std::vector<std::pair<std::string, std::vector<qsdk::Value>>> zip;   ///< keys varied together
  std::vector<std::pair<std::string, std::vector<qsdk::Value>>> grid;  ///< key -> values (cartesian)

  /// Parses `path`: `base = "exp.toml"` (relative to the sweep file), optional
  /// `out_dir` (default "runs/<sweep file stem>", relative to the current
  /// folder like [experiment] out_dir), and at least one of `[grid]`
  /// ("dotted.key" = [values], cartesian product), `[zip]` (keys whose arrays
  /// have one length: the i-th values go together) and `[[variant]]` (`name`
  /// and a `set` table of "dotted.key" = value). A value may be a table: it
  /// replaces the whole table at its key (`"quant.weight" = [{type = "lsq",
  /// bits = 2}, ...]` swaps the quantizer with its own options).
  /// Throws qsdk::Error(config) with file:line for every problem found.
  static SweepSpec load(const std::string& path);
  /// Every point: variants (file order) x zip choices x the grid's cartesian
  /// product (first key varying slowest).
  std::vector<SweepPoint> points() const;
  /// `<name>[__<variant>][__key=value]...`, with characters unsafe in file
  /// names replaced by '_' (a table value is written as its `type` followed by
  /// its other options, e.g. `quant.weight=lsq_bits=2`).
  std::string folder_name(const SweepPoint& point) const;
};

/// How `qhost sweep` runs its children.
struct SweepOptions {
  std::string qhost_exe;                 ///< the qhost binary to spawn (default: this process's)
  std::vector<std::string> global_args;  ///< global options passed on (--plugin-path, --log-level)
  std::string out_dir;                   ///< overrides the sweep file's out_dir when not empty
};

/// Runs every point not finished yet (a point folder holding `sweep_done`
/// and metrics.jsonl is skipped), continuing past failures; prints progress
/// and a summary to stdout. Returns 0 when no point failed, else 1.
int run_sweep(const SweepSpec& spec, const SweepOptions& options);

}  // namespace qhost
