// qdata/png_decode.cpp - see png_decode.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/png_decode.hpp"

#include <qsdk/error.hpp>

#include <png.h>

#include <cstring>

namespace qplug_transforms {
namespace {

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path, "corrupt PNG: " + what, "re-create or remove the file");
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

ImageInfo png_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits) {
  // signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4)
  if (bytes.size() < 24 || png_sig_cmp(bytes.data(), 0, 8) != 0 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0)
    corrupt(path, "missing signature or IHDR chunk");
  ImageInfo info;
  info.width = be32(bytes.data() + 16);
  info.height = be32(bytes.data() + 20);
  if (info.width <= 0 || info.height <= 0 || info.width > (1 << 20) || info.height > (1 << 20))
    corrupt(path, "implausible size " + std::to_string(info.width) + "x" + std::to_string(info.height));
  // Before libpng sees it: the simplified API would allocate the full image.
  check_image_size(info.width, info.height, path, limits);
  return info;
}

Image png_decode(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits) {
  png_info(bytes, path, limits);
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    const std::string msg = png.message;
    png_image_free(&png);
    corrupt(path, msg);
  }
  png.format = PNG_FORMAT_RGB;
  Image out(png.width, png.height, 3);
  if (!png_image_finish_read(&png, nullptr, out.pixels.data(), 0, nullptr)) {
    const std::string msg = png.message;
    png_image_free(&png);
    corrupt(path, msg);
  }
  png_image_free(&png);
  return out;
}

}  // namespace qplug_transforms
