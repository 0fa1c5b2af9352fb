#include "train/run_folder.hpp"

#include <qsdk/error.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace qhost {

namespace fs = std::filesystem;

std::string RunFolder::file(const std::string& name) const { return (fs::path(dir) / name).string(); }

FolderLock::FolderLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / ".qhost.lock").string();
  // O_CLOEXEC: processes this run starts must not keep the folder locked.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, std::string("cannot open the run folder's lock file: ") +
                                                              std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (err == EWOULDBLOCK)
      throw qsdk::Error(qsdk::ErrorCategory::usage, dir,
                        "another qhost run is using this run folder (pid " + (pid.empty() ? "unknown" : pid) + ")",
                        "wait for it to finish or stop it, or pass --out DIR for a separate folder");
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, std::string("cannot lock the run folder: ") + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds without the pid; a second run then reports "pid unknown".
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

bool holds_run(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::exists(d / "last.h5", ec) || fs::exists(d / "best.h5", ec)) return true;
  return fs::exists(d / "metrics.jsonl", ec) && fs::file_size(d / "metrics.jsonl", ec) > 0 && !ec;
}

RunFolder open_run_folder(const std::string& out_dir, const std::string& name, FolderMode mode) {
  RunFolder folder{(fs::path(out_dir.empty() ? "." : out_dir) / name).string()};
  if (mode == FolderMode::resume) {
    if (!fs::exists(folder.last_checkpoint()))
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, folder.last_checkpoint(),
                        "--resume needs the last checkpoint of the run, which does not exist",
                        "run without --resume to start from scratch, or check [experiment] name / out_dir");
    folder.lock = std::make_shared<FolderLock>(folder.dir);
    return folder;
  }
  std::error_code ec;
  fs::create_directories(folder.dir, ec);
  if (ec || !fs::is_directory(folder.dir))
    throw qsdk::Error(qsdk::ErrorCategory::runtime, folder.dir, "cannot create the run folder: " + ec.message(),
                      "check [experiment] out_dir or pass --out");
  // Locked before looking: two runs started at once cannot both find the folder empty.
  folder.lock = std::make_shared<FolderLock>(folder.dir);
  if (holds_run(folder.dir)) {
    if (mode == FolderMode::fresh)
      throw qsdk::Error(qsdk::ErrorCategory::usage, folder.dir,
                        "already holds a run (last.h5, best.h5 or metrics.jsonl); starting a new one would destroy it",
                        "continue it with --resume, pick another folder with --out DIR, or pass --overwrite to "
                        "replace it");
    for (const char* f : {"last.h5", "best.h5", "metrics.jsonl", "log.txt"}) {
      fs::remove(folder.file(f), ec);
      if (ec)
        throw qsdk::Error(qsdk::ErrorCategory::runtime, folder.file(f), "--overwrite cannot remove it: " + ec.message());
    }
  }
  return folder;
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot write the file");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot write the file: " + ec.message());
}

}  // namespace qhost
