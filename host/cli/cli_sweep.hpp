// cli_sweep.hpp - `qhost sweep` and `qhost report` (dispatched from cli.cpp).
#pragma once

#include <string>
#include <vector>

namespace qhost {

/// `qhost sweep SWEEP.toml [--out DIR]`; `global_args` (--plugin-path,
/// --log-level) are passed on to every child `qhost run`. With `help`, prints
/// the command's help. Returns the exit code.
int sweep_command(const std::vector<std::string>& args, bool help, const std::vector<std::string>& global_args);

/// `qhost report RUN_DIR... [--csv FILE]`: the results table on stdout.
int report_command(const std::vector<std::string>& args, bool help);

}  // namespace qhost
