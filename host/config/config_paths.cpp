// Paths named by an experiment file: resolved against the file's folder, and
// skipped (with a warning) under --synthetic when they do not exist.
#include "config/config.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

namespace qhost {

namespace fs = std::filesystem;

std::string resolve_config_path(const std::string& p, const Config& config) {
  if (p.empty() || fs::path(p).is_absolute() || fs::exists(p) || config.path().empty()) return p;
  auto alt = fs::path(config.path()).parent_path() / p;
  return fs::exists(alt) ? alt.string() : p;
}

bool skipped_for_synthetic(const Config& config, const std::string& path, const char* what) {
  std::error_code ec;
  if (!config.synthetic() || path.empty() || fs::exists(path, ec)) return false;
  spdlog::warn("--synthetic: {} {} does not exist; that network keeps its initialisation", what, path);
  return true;
}

}  // namespace qhost
