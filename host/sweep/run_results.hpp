// run_results.hpp - what a finished run folder says about itself (resolved.toml
// + metrics.jsonl), and the results table of `qhost report` / `qhost sweep`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// One row of the results table (the seed README's columns).
struct RunSummary {
  std::string dir;                  ///< the run folder
  std::string config;               ///< path of its resolved.toml
  std::string dataset;              ///< from [data] root (last path part) or type
  std::string method;               ///< quantizer type(s), "-" when full precision
  std::string model;                ///< e.g. "ResNet-20", "Torch-R18"
  std::string aw;                   ///< activation/weight bits, "32/32" unquantized, "t" = 3 levels
  std::optional<double> best_top1;  ///< best evaluation top-1 (percent), if any evaluation ran
  std::string flags;                ///< notable options: order, real_skip, tricks, what ran (e.g. "ep90",
                                    ///< "ep1/90 (2 of 5005 steps)" for a smoke run)
  std::map<std::string, std::string> settings;  ///< every option of resolved.toml: dotted key -> value text
};

/// Best evaluation top-1 recorded in a metrics.jsonl (nullopt: no eval line / no file).
std::optional<double> best_top1_from_metrics(const std::string& metrics_path);

/// Reads `<dir>/resolved.toml` and `<dir>/metrics.jsonl`; throws
/// qsdk::Error(usage) when `dir` has no resolved.toml.
RunSummary summarize_run(const std::string& dir);

/// `path` itself when it is a run folder (holds resolved.toml), else its
/// sub-folders that are, sorted by name; throws qsdk::Error(usage) when
/// neither.
std::vector<std::string> find_run_dirs(const std::string& path);

/// Markdown table: Dataset | Method | Model | A/W | Top-1 | Flags | Config,
/// and a "Differs" column before Config when the rows' settings differ in
/// keys the other columns may not show (e.g. a swept label-smoothing epsilon):
/// each row's value of every such key (experiment.name and out_dir aside).
std::string report_markdown(const std::vector<RunSummary>& rows);
/// The same columns as CSV (RFC 4180 quoting), with a header line; `differs`
/// is always present there (empty when nothing differs).
std::string report_csv(const std::vector<RunSummary>& rows);

}  // namespace qhost
