// cifar_records.cpp - see cifar_records.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "cifar_records.hpp"

#include <qsdk/error.hpp>

namespace qplug_cifar {

void check_cifar_size(uint64_t size, const CifarFormat& format, const std::string& path) {
  const auto record = static_cast<uint64_t>(format.record_bytes());
  if (size == 0 || size % record != 0)
    throw qsdk::Error(qsdk::ErrorCategory::data, path,
                      std::string("file is truncated or not a ") + format.variant() + " binary file (" +
                          std::to_string(size) + " bytes is not a positive multiple of the " + std::to_string(record) +
                          "-byte record)",
                      "download the file again; is `variant` right?");
}

void decode_cifar_records(const uint8_t* bytes, size_t size, const CifarFormat& format, const std::string& path,
                          std::vector<int64_t>& labels, std::vector<uint8_t>& pixels) {
  check_cifar_size(size, format, path);
  const int64_t label_bytes = format.label_bytes();
  const int64_t record = format.record_bytes();
  const int64_t label_offset = format.cifar100 && !format.coarse ? 1 : 0;
  const int64_t n = static_cast<int64_t>(size) / record;
  const size_t base = labels.size();
  labels.resize(base + static_cast<size_t>(n));
  pixels.resize((base + static_cast<size_t>(n)) * kCifarPixels);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes + i * record;
    // Every label byte is checked, also the CIFAR-100 label set not in
    // use: an out-of-range one means the record is not what it claims.
    for (int64_t b = 0; b < label_bytes; ++b) {
      const int64_t limit = format.cifar100 ? (b == 0 ? 20 : 100) : 10;
      if (rec[b] >= limit)
        throw qsdk::Error(qsdk::ErrorCategory::data, path,
                          "record " + std::to_string(i) + " has " +
                              (format.cifar100 ? (b == 0 ? "coarse label " : "fine label ") : "label ") +
                              std::to_string(rec[b]) + ", outside [0, " + std::to_string(limit) + ")",
                          "the file is corrupt or `variant` is wrong (CIFAR-100 records have two label bytes)");
    }
    labels[base + static_cast<size_t>(i)] = rec[label_offset];
    // Stored planar (1024 R, 1024 G, 1024 B); kept interleaved for the transforms.
    const uint8_t* plane = rec + label_bytes;
    uint8_t* dst = pixels.data() + (base + static_cast<size_t>(i)) * kCifarPixels;
    for (int64_t p = 0; p < 1024; ++p) {
      dst[3 * p] = plane[p];
      dst[3 * p + 1] = plane[1024 + p];
      dst[3 * p + 2] = plane[2048 + p];
    }
  }
}

}  // namespace qplug_cifar
