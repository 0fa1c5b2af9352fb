// qdata/file_io.hpp - whole-file reads with data errors that name the file.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qplug_transforms {

/// Reads a whole file; throws qsdk::Error(data) naming it when it is missing
/// or unreadable.
std::vector<uint8_t> read_file(const std::string& path);

/// Reads a whole file that may be gzip-compressed (detected from its magic
/// bytes); throws qsdk::Error(data) naming it when it is missing, unreadable
/// or a truncated/corrupt gzip stream.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

/// The first of `root/<name>` for name in `names` that exists, or "" if none.
std::string find_first(const std::string& root, const std::vector<std::string>& names);

/// Throws qsdk::Error(data) unless `path` is an existing directory.
void require_directory(const std::string& path, const std::string& what, const std::string& hint);

}  // namespace qplug_transforms
