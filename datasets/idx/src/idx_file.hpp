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
/// rank, each dim (1 .. 2^31 - 1), that their product (overflow-checked) is
/// at most `max_bytes`, and that the payload is exactly that long; throws
/// qsdk::Error(data) naming `path` otherwise. Memory follows the data that
/// is actually there, so a gzip bomb costs at most `max_bytes`.
IdxArray read_idx(const std::string& path, int expected_rank, uint64_t max_bytes);

}  // namespace qplug_idx
