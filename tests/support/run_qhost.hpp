// run_qhost.hpp - runs the qhost binary as a child process for end-to-end tests.
#pragma once

#include <string>

namespace qtool_test {

/// Exit status and combined stdout + stderr of one command.
struct QhostResult {
  int code = -1;       ///< exit code; -1 when the process did not exit normally
  std::string output;  ///< stdout and stderr, interleaved as written
};

/// Runs `exe args` through the shell with the environment assignments `env`
/// ("A=1 B=2", may be empty) in front, capturing its output in a log file in
/// `work_dir` (created if needed). The log is named after this process, so
/// test cases that CTest runs in parallel never share one.
QhostResult run_qhost(const std::string& exe, const std::string& work_dir, const std::string& args,
                      const std::string& env = "");

/// The whole text of a file ("" when it cannot be read).
std::string read_text(const std::string& path);

}  // namespace qtool_test
