// idx_file.hpp - the IDX container of MNIST-style datasets.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qplug_idx {

/// An unsigned-byte IDX array: dims and the payload.
struct IdxArray {
  std::vector<int64_t> dims;  ///< e.g. {60000, 28, 28} or {60000}
  std::vector<uint8_t> data;  ///< prod(dims) bytes
};

/// Reads an IDX file (raw or gzip) whose element type is unsigned byte and
/// which has `expected_rank` dims (0 = any). Checks the magic number, the
/// rank and that the payload size matches the header; throws
/// qsdk::Error(data) naming `path` otherwise.
IdxArray read_idx(const std::string& path, int expected_rank);

}  // namespace qplug_idx
