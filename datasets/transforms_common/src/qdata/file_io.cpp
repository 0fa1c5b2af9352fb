// qdata/file_io.cpp - see file_io.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace qplug_transforms {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void missing(const std::string& path) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path, "file not found",
                    "check the dataset's `root` option and the file names");
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) missing(path);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f)
    throw qsdk::Error(qsdk::ErrorCategory::data, path, std::string("cannot open: ") + std::strerror(errno),
                      "check permissions");
  std::vector<uint8_t> out;
  const auto size = fs::file_size(path, ec);
  if (!ec) out.reserve(static_cast<size_t>(size));
  uint8_t buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f.get())) > 0) out.insert(out.end(), buffer, buffer + n);
  if (std::ferror(f.get()))
    throw qsdk::Error(qsdk::ErrorCategory::data, path, "read error", "check the disk and the file");
  return out;
}

namespace {

[[noreturn]] void gzip_error(const std::string& path, const std::string& message) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path, message, "download the file again");
}

std::unique_ptr<FILE, int (*)(FILE*)> open_file(const std::string& path, uint64_t& size) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) missing(path);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f)
    throw qsdk::Error(qsdk::ErrorCategory::data, path, std::string("cannot open: ") + std::strerror(errno),
                      "check permissions");
  const auto n = fs::file_size(path, ec);
  size = ec ? 0 : static_cast<uint64_t>(n);
  return f;
}

}  // namespace

// zlib state plus the compressed bytes read ahead of it.
struct MaybeGzipReader::Inflater {
  z_stream zs;
  std::vector<uint8_t> in = std::vector<uint8_t>(1 << 16);
  bool eof = false;       // the file has no more compressed bytes
  bool finished = false;  // the last gzip member ended
  Inflater() {
    std::memset(&zs, 0, sizeof(zs));
    zs.next_in = in.data();
  }
  ~Inflater() { inflateEnd(&zs); }
};

MaybeGzipReader::MaybeGzipReader(std::string path) : path_(std::move(path)), file_(open_file(path_, file_size_)) {
  const int c0 = std::fgetc(file_.get());
  const int c1 = c0 == EOF ? EOF : std::fgetc(file_.get());
  gzip_ = c0 == 0x1f && c1 == 0x8b;
  std::rewind(file_.get());
  if (!gzip_) return;
  inflater_ = std::make_unique<Inflater>();
  // 15 + 32: zlib or gzip header, detected automatically.
  if (inflateInit2(&inflater_->zs, 15 + 32) != Z_OK)
    throw qsdk::Error(qsdk::ErrorCategory::data, path_, "zlib initialisation failed", "out of memory?");
}

MaybeGzipReader::~MaybeGzipReader() = default;

uint64_t MaybeGzipReader::max_content_size() const {
  if (!gzip_) return file_size_;
  return file_size_ > UINT64_MAX / kMaxDeflateRatio ? UINT64_MAX : file_size_ * kMaxDeflateRatio;
}

uint64_t MaybeGzipReader::read(std::vector<uint8_t>& out, uint64_t n) {
  // Grow `out` by at most this much per step, so memory follows what the file
  // really produces rather than what a header claims.
  constexpr uint64_t kStep = uint64_t(1) << 20;
  uint64_t done = 0;
  if (!gzip_) {
    while (done < n) {
      const size_t want = static_cast<size_t>(std::min(n - done, kStep));
      const size_t base = out.size();
      out.resize(base + want);
      const size_t got = std::fread(out.data() + base, 1, want, file_.get());
      out.resize(base + got);
      done += got;
      if (got < want) break;
    }
    if (std::ferror(file_.get())) gzip_error(path_, "read error");
    return done;
  }
  Inflater& z = *inflater_;
  while (done < n && !z.finished) {
    if (z.zs.avail_in == 0 && !z.eof) {
      const size_t got = std::fread(z.in.data(), 1, z.in.size(), file_.get());
      if (std::ferror(file_.get())) gzip_error(path_, "read error");
      z.eof = got < z.in.size();
      z.zs.next_in = z.in.data();
      z.zs.avail_in = static_cast<uInt>(got);
    }
    const size_t want = static_cast<size_t>(std::min(n - done, kStep));
    const size_t base = out.size();
    out.resize(base + want);
    z.zs.next_out = out.data() + base;
    z.zs.avail_out = static_cast<uInt>(want);
    const int rc = inflate(&z.zs, Z_NO_FLUSH);
    const size_t produced = want - z.zs.avail_out;
    out.resize(base + produced);
    done += produced;
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members (as `cat a.gz b.gz`) continue the content.
      if (z.zs.avail_in == 0 && !z.eof) {
        const size_t got = std::fread(z.in.data(), 1, z.in.size(), file_.get());
        if (std::ferror(file_.get())) gzip_error(path_, "read error");
        z.eof = got < z.in.size();
        z.zs.next_in = z.in.data();
        z.zs.avail_in = static_cast<uInt>(got);
      }
      if (z.zs.avail_in > 0 && z.zs.next_in[0] == 0x1f) {
        inflateReset(&z.zs);
        continue;
      }
      z.finished = true;
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.zs.avail_in == 0 && z.eof)
      gzip_error(path_, "gzip stream is truncated (ends after " + std::to_string(file_size_) + " compressed bytes)");
    if (rc == Z_BUF_ERROR) continue;
    gzip_error(path_, "corrupt gzip data: " + std::string(z.zs.msg ? z.zs.msg : "error " + std::to_string(rc)));
  }
  return done;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path, uint64_t max_bytes) {
  MaybeGzipReader reader(path);
  auto too_large = [&] {
    throw qsdk::Error(qsdk::ErrorCategory::data, path,
                      std::string(reader.compressed() ? "decompresses to" : "is") + " more than " +
                          std::to_string(max_bytes) + " bytes (corrupt, or a decompression bomb)",
                      "check the file; if it is genuine, raise the dataset's max_bytes option");
  };
  if (!reader.compressed() && reader.file_size() > max_bytes) too_large();
  std::vector<uint8_t> out;
  // Never the gzip trailer's ISIZE: it is whatever the file claims (4 GiB
  // from an 18-byte file). What deflate can produce from this many bytes and
  // the cap are facts; past 64 MiB the vector grows with the real content.
  const uint64_t ahead = reader.compressed() ? uint64_t(1) << 26 : max_bytes;
  out.reserve(static_cast<size_t>(std::min({reader.max_content_size(), max_bytes, ahead})));
  // One byte more than allowed tells "exactly at the cap" from "over it".
  const uint64_t limit = max_bytes == UINT64_MAX ? max_bytes : max_bytes + 1;
  if (reader.read(out, limit) > max_bytes) too_large();
  return out;
}

std::string find_first(const std::string& root, const std::vector<std::string>& names) {
  std::error_code ec;
  for (const auto& name : names) {
    const fs::path p = fs::path(root) / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

void require_directory(const std::string& path, const std::string& what, const std::string& hint) {
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    throw qsdk::Error(qsdk::ErrorCategory::data, path, what + " not found (not a directory)", hint);
}

}  // namespace qplug_transforms
