// qsdk/error.hpp - the one user-facing error type of qtool.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <stdexcept>
#include <string>

namespace qsdk {

/// What went wrong, which also decides qhost's exit code.
enum class ErrorCategory {
  usage = 1,       ///< bad command line
  config = 2,      ///< bad TOML / option values
  plugin = 3,      ///< a plugin could not be found, loaded or registered
  data = 4,        ///< a dataset file is missing or malformed
  checkpoint = 5,  ///< a checkpoint is missing, corrupt or does not fit
  runtime = 6,     ///< anything that failed while running
};

/// Name of a category ("config", "plugin", ...).
QSDK_API const char* to_string(ErrorCategory category);

/// A user error: category, the place it concerns (file:line, key, plugin or
/// module path) and a hint on how to fix it. Defined out of line in libqsdk so
/// that a plugin throwing it and the host catching it agree on its typeinfo.
///
/// Example:
/// ```
/// throw qsdk::Error(qsdk::ErrorCategory::data, "/data/train-images.gz",
///                   "file is truncated (expected 47040016 bytes, found 1000)",
///                   "download the file again");
/// ```
class QSDK_API Error : public std::runtime_error {
 public:
  /// Builds the error; what() reads "<place>: <message> (hint: <hint>)".
  Error(ErrorCategory category, std::string place, std::string message, std::string hint = "");
  ~Error() override;

  /// The category, which decides the exit code.
  ErrorCategory category() const noexcept { return category_; }
  /// Where the problem is (may be empty).
  const std::string& place() const noexcept { return place_; }
  /// The message without place and hint.
  const std::string& message() const noexcept { return message_; }
  /// How to fix it (may be empty).
  const std::string& hint() const noexcept { return hint_; }

 private:
  ErrorCategory category_;
  std::string place_;
  std::string message_;
  std::string hint_;
};

/// Throws a config error about option `key` (used by plugins validating
/// combinations of options the schema cannot express).
[[noreturn]] QSDK_API void config_error(const std::string& key, const std::string& message,
                                        const std::string& hint = "");

}  // namespace qsdk
