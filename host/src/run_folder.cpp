#include "run_folder.hpp"

#include <qsdk/error.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace qhost {

namespace fs = std::filesystem;

std::string RunFolder::file(const std::string& name) const { return (fs::path(dir) / name).string(); }

RunFolder open_run_folder(const std::string& out_dir, const std::string& name, bool resume) {
  RunFolder folder{(fs::path(out_dir.empty() ? "." : out_dir) / name).string()};
  if (resume) {
    if (!fs::exists(folder.last_checkpoint()))
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, folder.last_checkpoint(),
                        "--resume needs the last checkpoint of the run, which does not exist",
                        "run without --resume to start from scratch, or check [experiment] name / out_dir");
    return folder;
  }
  std::error_code ec;
  fs::create_directories(folder.dir, ec);
  if (ec || !fs::is_directory(folder.dir))
    throw qsdk::Error(qsdk::ErrorCategory::runtime, folder.dir, "cannot create the run folder: " + ec.message(),
                      "check [experiment] out_dir or pass --out");
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
