// sample_files.hpp - writes tiny datasets in their real on-disk formats (the data
// tests, tools/bench/data_pipeline): a library outside tests/ so tools never include test headers.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qtool_samples {

/// A fresh directory under $TMPDIR removed (recursively) on destruction.
class TempDir {
 public:
  /// Creates "<tmp>/qdata-<tag>-XXXXXX".
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The directory.
  const std::string& path() const { return path_; }
  /// path() + "/" + name.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes `bytes` to `path` (creating parent folders).
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
/// gzip-compresses `bytes`.
std::vector<uint8_t> gzip(const std::vector<uint8_t>& bytes);
/// An unsigned-byte IDX file: magic, big-endian dims, data.
std::vector<uint8_t> idx_bytes(const std::vector<int64_t>& dims, const std::vector<uint8_t>& data);
/// A smooth random RGB image (interleaved), deterministic in `seed`.
std::vector<uint8_t> smooth_rgb(int width, int height, uint64_t seed);
/// Encodes interleaved RGB with libturbojpeg (4:2:0 or grey, baseline or progressive).
std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& rgb, int width, int height, int quality = 90,
                                 bool progressive = false, bool grey = false);
/// Encodes interleaved RGB with libpng.
std::vector<uint8_t> encode_png(const std::vector<uint8_t>& rgb, int width, int height);

}  // namespace qtool_samples
