// qdata/file_io.hpp - whole-file and streamed reads with data errors that name
// the file.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace qplug_transforms {

/// Default cap on what read_maybe_gzip() returns: 1 GiB. The largest uint8
/// IDX file in common use (EMNIST byclass, 547 MB) fits; a gzip bomb stops here.
inline constexpr uint64_t kDefaultMaxDecompressedBytes = uint64_t(1) << 30;

/// Deflate cannot expand data by more than this factor (a 258-byte match
/// costs at least two bits, plus block overhead), so a gzip file of n bytes
/// never holds more than kMaxDeflateRatio * n bytes: the most worth
/// preallocating, whatever the trailer's ISIZE claims.
inline constexpr uint64_t kMaxDeflateRatio = 1032;

/// Reads a whole file; throws qsdk::Error(data) naming it when it is missing
/// or unreadable.
std::vector<uint8_t> read_file(const std::string& path);

/// The content of a file that may be gzip-compressed (detected from its magic
/// bytes), read in pieces so that a caller can check a header before it
/// commits memory to the payload. Concatenated gzip members continue the
/// content (as `cat a.gz b.gz`); bytes after the last member that are not a
/// gzip member are ignored (as gzip does). Throws qsdk::Error(data) naming the
/// file when it is missing, unreadable, truncated or corrupt.
class MaybeGzipReader {
 public:
  /// Opens `path` and sniffs the gzip magic bytes.
  explicit MaybeGzipReader(std::string path);
  ~MaybeGzipReader();
  MaybeGzipReader(const MaybeGzipReader&) = delete;
  MaybeGzipReader& operator=(const MaybeGzipReader&) = delete;

  /// Appends up to `n` more bytes of content to `out`; returns how many were
  /// appended (fewer than `n` only at the end of the content). `out` grows
  /// with what is actually produced, never by `n` up front.
  uint64_t read(std::vector<uint8_t>& out, uint64_t n);
  /// Whether the file is gzip-compressed.
  bool compressed() const { return gzip_; }
  /// The size of the file on disk.
  uint64_t file_size() const { return file_size_; }
  /// The most content the file can hold: its size when raw, kMaxDeflateRatio
  /// times its size when compressed.
  uint64_t max_content_size() const;
  /// The file's path.
  const std::string& path() const { return path_; }

 private:
  struct Inflater;
  std::string path_;
  uint64_t file_size_ = 0;  // before file_: open_file() sets it
  std::unique_ptr<FILE, int (*)(FILE*)> file_;
  bool gzip_ = false;
  std::unique_ptr<Inflater> inflater_;
};

/// Reads a whole file that may be gzip-compressed (detected from its magic
/// bytes); throws qsdk::Error(data) naming it when it is missing, unreadable,
/// a truncated/corrupt gzip stream, or when its content exceeds `max_bytes`
/// (a decompression bomb stops there instead of exhausting memory).
std::vector<uint8_t> read_maybe_gzip(const std::string& path, uint64_t max_bytes = kDefaultMaxDecompressedBytes);

/// The first of `root/<name>` for name in `names` that exists, or "" if none.
std::string find_first(const std::string& root, const std::vector<std::string>& names);

/// Throws qsdk::Error(data) unless `path` is an existing directory.
void require_directory(const std::string& path, const std::string& what, const std::string& hint);

}  // namespace qplug_transforms
