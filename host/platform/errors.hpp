// errors.hpp - helpers for user-facing error messages: did-you-mean, lists,
// exit codes, and the top-level report printed by the CLI.
#pragma once

#include <qsdk/error.hpp>

#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// Optimal-string-alignment (restricted Damerau-Levenshtein) distance: edits,
/// inserts, deletes and swaps of two neighbours each cost 1. Case-insensitive.
size_t edit_distance(const std::string& a, const std::string& b);

/// The candidate closest to `word` if it is close enough to be a plausible
/// typo (distance <= max(1, min(3, |word| / 3 + 1))); ties go to the first.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

/// "did you mean 'x'?" or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

/// Joins `items` with `sep`.
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

/// `v` for a message, in at most 6 significant digits ("0.1", "1e-05").
std::string short_number(double v);

/// Process exit code of an error category (usage 1 ... runtime 6).
int exit_code(qsdk::ErrorCategory category);

/// Runs `body` and turns every escaping exception into a message on stderr
/// ("error[<category>]: ...") and the category's exit code. This is the CLI's
/// outermost frame: nothing a plugin or LibTorch throws may crash qhost.
int report_errors(int (*body)(int, char**), int argc, char** argv);

}  // namespace qhost
