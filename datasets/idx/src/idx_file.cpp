// idx_file.cpp - see idx_file.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "idx_file.hpp"

#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

#include <algorithm>

namespace qplug_idx {

IdxArray read_idx(const std::string& path, int expected_rank, uint64_t max_bytes) {
  qplug_transforms::MaybeGzipReader reader(path);
  auto fail = [&](const std::string& message, const std::string& hint) {
    throw qsdk::Error(qsdk::ErrorCategory::data, path, message, hint);
  };
  // The header first: it decides how much the payload may be, before any
  // memory is committed to it.
  std::vector<uint8_t> header;
  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the rank.
  if (reader.read(header, 4) < 4 || header[0] != 0 || header[1] != 0)
    fail("not an IDX file (bad magic number)", "expected MNIST-style *-ubyte files (raw or .gz)");
  if (header[2] != 0x08)
    fail("IDX element type " + std::to_string(header[2]) + " is not unsigned byte (8)",
         "only uint8 IDX files (MNIST, Fashion-MNIST, KMNIST) are supported");
  const int rank = header[3];
  if (rank < 1 || (expected_rank > 0 && rank != expected_rank))
    fail("IDX file has " + std::to_string(rank) + " dimension(s), expected " + std::to_string(expected_rank),
         "are the image and label file names swapped?");
  const uint64_t header_size = 4 + 4 * static_cast<uint64_t>(rank);
  if (reader.read(header, header_size - 4) < header_size - 4)
    fail("file is truncated inside its header", "download the file again");
  IdxArray out;
  // Checked product: 2^32 * 2^32 wraps to 0 in 64 bits, and a wrapped small
  // count would pass the size check and send get() past the end of the data.
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* p = header.data() + 4 + 4 * d;
    const uint32_t dim = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    // IDX dims are signed 32-bit; 0 leaves nothing to train on.
    if (dim == 0 || dim > 0x7fffffffu)
      fail("dimension " + std::to_string(d) + " of the header is " + std::to_string(dim) +
               ", outside [1, 2147483647]",
           "the file is corrupt; download it again");
    out.dims.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(count, uint64_t(dim), &count) || count > max_bytes) {
      std::string shape;
      for (int k = 0; k < rank; ++k) {
        const uint8_t* q = header.data() + 4 + 4 * k;
        shape += (k ? " x " : "") + std::to_string((uint32_t(q[0]) << 24) | (uint32_t(q[1]) << 16) |
                                                   (uint32_t(q[2]) << 8) | uint32_t(q[3]));
      }
      fail("header announces " + shape + " elements, more than max_bytes = " + std::to_string(max_bytes),
           "the file is corrupt; if it is genuine, raise the dataset's max_bytes option");
    }
  }
  // A raw file's size is known: compare before reading.
  if (!reader.compressed()) {
    const uint64_t have = reader.file_size() - header_size;
    if (have < count)
      fail("file is truncated: header announces " + std::to_string(count) + " bytes of data, found " +
               std::to_string(have),
           "download the file again");
    if (have > count)
      fail("file has " + std::to_string(have - count) + " bytes after the data the header announces",
           "the file is corrupt; download it again");
  }
  // Deflate's expansion bound caps the reservation; the vector grows with
  // the data that really arrives.
  out.data.reserve(static_cast<size_t>(std::min(count, reader.max_content_size())));
  const uint64_t have = reader.read(out.data, count);
  if (have < count)
    fail("file is truncated: header announces " + std::to_string(count) + " bytes of data, found " +
             std::to_string(have),
         "download the file again");
  std::vector<uint8_t> extra;
  if (reader.read(extra, 1) > 0)
    fail("file has more data than the " + std::to_string(count) + " bytes the header announces",
         "the file is corrupt; download it again");
  return out;
}

}  // namespace qplug_idx
