// cifar_records.hpp - the record layout of the CIFAR binary files, parsed and
// checked without LibTorch so the `cifar` fuzz target (tests/fuzz/cifar_fuzz.cpp)
// exercises exactly what the dataset plugin runs.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qplug_cifar {

/// Pixel bytes of one record: 32 x 32 x 3.
inline constexpr int64_t kCifarPixels = 32 * 32 * 3;

/// The record layout of one CIFAR binary variant.
struct CifarFormat {
  bool cifar100 = false;  ///< records start with two label bytes (coarse, fine) instead of one
  bool coarse = false;    ///< cifar100: keep the coarse label (20 classes) rather than the fine one (100)
  /// Label bytes before the pixels of a record.
  int64_t label_bytes() const { return cifar100 ? 2 : 1; }
  /// Bytes of one record.
  int64_t record_bytes() const { return label_bytes() + kCifarPixels; }
  /// `cifar10` / `cifar100`, as the `variant` option spells it.
  const char* variant() const { return cifar100 ? "cifar100" : "cifar10"; }
};

/// Throws qsdk::Error(data) naming `path` unless `size` bytes are a positive
/// whole number of records (a half-copied file ends inside a record).
void check_cifar_size(uint64_t size, const CifarFormat& format, const std::string& path);

/// Appends the records of one file's `bytes` to `labels` and `pixels` (32 x 32
/// x 3, interleaved HWC; the file stores each record planar). Checks the size
/// (check_cifar_size) and every label byte, also the CIFAR-100 label set not in
/// use; throws qsdk::Error(data) naming `path` and the record.
void decode_cifar_records(const uint8_t* bytes, size_t size, const CifarFormat& format, const std::string& path,
                          std::vector<int64_t>& labels, std::vector<uint8_t>& pixels);

}  // namespace qplug_cifar
