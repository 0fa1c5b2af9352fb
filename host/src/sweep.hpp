// sweep.hpp - `qhost sweep SWEEP.toml`: every point of a grid of overrides
// run as its own `qhost run` child process.
#pragma once

#include <qsdk/value.hpp>

#include <string>
#include <utility>
#include <vector>

namespace qhost {

/// One grid point: (dotted key, value) in the grid's key order.
using SweepPoint = std::vector<std::pair<std::string, qsdk::Value>>;

/// A parsed sweep file.
struct SweepSpec {
  std::string file;                                                    ///< the sweep TOML
  std::string base;                                                    ///< experiment file (absolute or cwd-relative)
  std::string out_dir;                                                 ///< parent of the point folders
  std::string name;                                                    ///< the base experiment's name
  std::vector<std::pair<std::string, std::vector<qsdk::Value>>> grid;  ///< key -> values

  /// Parses `path`: `base = "exp.toml"` (relative to the sweep file), optional
  /// `out_dir` (default "runs/<sweep file stem>", relative to the current
  /// folder like [experiment] out_dir) and `[grid]` of "dotted.key" = [values].
  /// Throws qsdk::Error(config) with file:line for every problem found.
  static SweepSpec load(const std::string& path);
  /// The cartesian product of the grid, first key varying slowest.
  std::vector<SweepPoint> points() const;
  /// `<name>__key=value__...`, with characters unsafe in file names replaced by '_'.
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
