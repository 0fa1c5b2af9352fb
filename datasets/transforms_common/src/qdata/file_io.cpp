// qdata/file_io.cpp - see file_io.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

#include <zlib.h>

#include <cerrno>
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

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> raw = read_file(path);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;

  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  // 15 + 32: zlib or gzip header, detected automatically.
  if (inflateInit2(&zs, 15 + 32) != Z_OK)
    throw qsdk::Error(qsdk::ErrorCategory::data, path, "zlib initialisation failed");
  std::vector<uint8_t> out;
  // The gzip trailer stores the size mod 2^32: a good first guess.
  size_t guess = raw.size() * 4;
  if (raw.size() >= 18) {
    const size_t isize = raw[raw.size() - 4] | (raw[raw.size() - 3] << 8) | (raw[raw.size() - 2] << 16) |
                         (static_cast<size_t>(raw[raw.size() - 1]) << 24);
    if (isize > raw.size()) guess = isize;
  }
  out.resize(guess + 1);
  zs.next_in = raw.data();
  zs.avail_in = static_cast<uInt>(raw.size());
  size_t produced = 0;
  int rc = Z_OK;
  while (true) {
    if (produced == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    const uInt before = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    produced += before - zs.avail_out;
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members (as `cat a.gz b.gz`) continue the stream.
      if (zs.avail_in > 0 && raw[raw.size() - zs.avail_in] == 0x1f) {
        inflateReset(&zs);
        continue;
      }
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      inflateEnd(&zs);
      throw qsdk::Error(qsdk::ErrorCategory::data, path,
                        "gzip stream is truncated (ends after " + std::to_string(raw.size()) + " compressed bytes)",
                        "download the file again");
    }
    if (rc == Z_BUF_ERROR) continue;
    const std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
    inflateEnd(&zs);
    throw qsdk::Error(qsdk::ErrorCategory::data, path, "corrupt gzip data: " + msg, "download the file again");
  }
  inflateEnd(&zs);
  out.resize(produced);
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
