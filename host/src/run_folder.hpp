// run_folder.hpp - `<out_dir>/<name>/` with resolved.toml, log.txt,
// metrics.jsonl, last.h5 and best.h5.
#pragma once

#include <string>

namespace qhost {

/// The files of one run.
struct RunFolder {
  std::string dir;  ///< the folder itself

  /// `<dir>/<file>`.
  std::string file(const std::string& name) const;
  /// `<dir>/last.h5`
  std::string last_checkpoint() const { return file("last.h5"); }
  /// `<dir>/best.h5`
  std::string best_checkpoint() const { return file("best.h5"); }
  /// `<dir>/metrics.jsonl`
  std::string metrics() const { return file("metrics.jsonl"); }
  /// `<dir>/log.txt`
  std::string log() const { return file("log.txt"); }
  /// `<dir>/resolved.toml`
  std::string resolved() const { return file("resolved.toml"); }
};

/// Creates `<out_dir>/<name>/` (and parents). With `resume`, the folder and
/// its last.h5 must exist: throws qsdk::Error(checkpoint) otherwise, with a hint.
RunFolder open_run_folder(const std::string& out_dir, const std::string& name, bool resume);

/// Writes `text` to `path` atomically (temp file + rename).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace qhost
