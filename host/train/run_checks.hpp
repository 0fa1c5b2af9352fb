// run_checks.hpp - checks that keep a run's files trustworthy: what a resumed
// run changed in the configuration, and parameters that are no longer finite.
#pragma once

#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// The dotted keys (`optimizer.lr`, `trick[0].alpha`) whose values differ
/// between two resolved TOML documents, or that only one of them has, sorted.
/// Arrays of tables are compared entry by entry, other arrays as a whole.
/// Throws Config::from_string()'s qsdk::Error, naming `stored_origin`, when `stored` is not TOML.
std::vector<std::string> config_differences(const std::string& stored, const std::string& current,
                                            const std::string& stored_origin);

/// Logs a warning listing config_differences() between a checkpoint's stored
/// configuration and the resumed run's (a resumed run may legitimately change
/// e.g. train.epochs, so this warns rather than refuses). Returns the keys.
std::vector<std::string> warn_config_changes(const std::string& stored, const std::string& current,
                                             const std::string& checkpoint);

/// The dotted name of the first parameter or buffer of `module` that holds a
/// NaN or an infinity; nullopt when all are finite.
std::optional<std::string> first_nonfinite(const torch::nn::Module& module);

}  // namespace qhost
