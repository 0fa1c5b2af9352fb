// logging.hpp - qhost's spdlog setup: console on stderr, plus a run log file.
#pragma once

#include <string>

namespace qhost {

/// Installs the default logger ("qhost") writing to stderr at `level`
/// (trace, debug, info, warn, error, critical, off). Throws
/// qsdk::Error(usage) on an unknown level name.
void init_logging(const std::string& level = "info");

/// Adds `path` (e.g. "<run dir>/log.txt") as a second sink of the default
/// logger, appending, at the logger's level. Called by the runtime once the
/// run folder exists; throws qsdk::Error(runtime) when it cannot be opened.
void add_log_file(const std::string& path);

/// Flushes every sink (call before exiting).
void flush_logs();

}  // namespace qhost
