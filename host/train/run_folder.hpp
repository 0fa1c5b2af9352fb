// run_folder.hpp - `<out_dir>/<name>/` with resolved.toml, log.txt,
// metrics.jsonl, last.h5 and best.h5.
#pragma once

#include <memory>
#include <string>

namespace qhost {

class FolderLock;

/// The files of one run.
struct RunFolder {
  std::string dir;  ///< the folder itself
  /// The exclusive lock on the folder (open_run_folder), held as long as any
  /// copy of this RunFolder lives; null for folders opened without one.
  std::shared_ptr<const FolderLock> lock;

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

/// What open_run_folder() does with a folder that already holds a run.
enum class FolderMode {
  fresh,      ///< refuse it (qsdk::Error(usage) naming --resume, --out and --overwrite)
  resume,     ///< continue it: its last.h5 must exist
  overwrite,  ///< delete its run files (last.h5, best.h5, metrics.jsonl, log.txt) and start over
};

/// An exclusive flock(2) on `<dir>/.qhost.lock`, which holds the holder's pid.
/// Released when the process ends, however it ends.
class FolderLock {
 public:
  /// Takes the lock without waiting; throws qsdk::Error(usage) naming the
  /// folder and the pid of the process that holds it.
  explicit FolderLock(const std::string& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

/// True when `dir` holds the results of a run: last.h5, best.h5 or a non-empty metrics.jsonl.
bool holds_run(const std::string& dir);

/// Creates `<out_dir>/<name>/` (and parents) and locks it (FolderLock: a second
/// run on the same folder fails fast). A folder that already holds a run
/// (holds_run()) is refused unless `mode` is resume or overwrite. With resume,
/// its last.h5 must exist: throws qsdk::Error(checkpoint) otherwise, with a hint.
RunFolder open_run_folder(const std::string& out_dir, const std::string& name, FolderMode mode);

/// Writes `text` to `path` atomically (temp file + rename).
void write_text_file(const std::string& path, const std::string& text);

}  // namespace qhost
