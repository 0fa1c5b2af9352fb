// idx_file.cpp - see idx_file.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "idx_file.hpp"

#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

namespace qplug_idx {

IdxArray read_idx(const std::string& path, int expected_rank) {
  std::vector<uint8_t> bytes = qplug_transforms::read_maybe_gzip(path);
  auto fail = [&](const std::string& message, const std::string& hint) {
    throw qsdk::Error(qsdk::ErrorCategory::data, path, message, hint);
  };
  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the rank.
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    fail("not an IDX file (bad magic number)", "expected MNIST-style *-ubyte files (raw or .gz)");
  if (bytes[2] != 0x08)
    fail("IDX element type " + std::to_string(bytes[2]) + " is not unsigned byte (8)",
         "only uint8 IDX files (MNIST, Fashion-MNIST, KMNIST) are supported");
  const int rank = bytes[3];
  if (rank < 1 || (expected_rank > 0 && rank != expected_rank))
    fail("IDX file has " + std::to_string(rank) + " dimension(s), expected " + std::to_string(expected_rank),
         "are the image and label file names swapped?");
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header) fail("file is truncated inside its header", "download the file again");
  IdxArray out;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const int64_t dim = (int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) | (int64_t(p[2]) << 8) | int64_t(p[3]);
    out.dims.push_back(dim);
    count *= static_cast<uint64_t>(dim);
  }
  const uint64_t have = bytes.size() - header;
  if (have < count)
    fail("file is truncated: header announces " + std::to_string(count) + " bytes of data, found " +
             std::to_string(have),
         "download the file again");
  if (have > count)
    fail("file has " + std::to_string(have - count) + " bytes after the data the header announces",
         "the file is corrupt; download it again");
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.data = std::move(bytes);
  return out;
}

}  // namespace qplug_idx
