// qdata/image_decode.cpp - format dispatch (see image_decode.hpp).
// SPDX-License-Identifier: Apache-2.0
#include "qdata/image_decode.hpp"

#include "qdata/jpeg_decode.hpp"
#include "qdata/png_decode.hpp"

#include <qsdk/error.hpp>

namespace qplug_transforms {
namespace {

[[noreturn]] void unknown(const std::vector<uint8_t>& bytes, const std::string& path) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path,
                    bytes.empty() ? "empty file" : "not a JPEG or PNG image (unknown signature)",
                    "re-create the file or remove it from the dataset folder");
}

}  // namespace

ImageFormat sniff_format(const std::vector<uint8_t>& bytes) {
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return ImageFormat::jpeg;
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= 8 && std::equal(png_sig, png_sig + 8, bytes.begin())) return ImageFormat::png;
  return ImageFormat::unknown;
}

void check_image_size(int64_t width, int64_t height, const std::string& path, const DecodeLimits& limits) {
  // Both sides are below 2^32 (JPEG: 65500, PNG: 2^31), so the product fits.
  const int64_t pixels = width * height;
  if (pixels > limits.max_pixels)
    throw qsdk::Error(qsdk::ErrorCategory::data, path,
                      "image is " + std::to_string(width) + "x" + std::to_string(height) + " = " +
                          std::to_string(pixels) + " pixels, more than max_image_pixels = " +
                          std::to_string(limits.max_pixels) + " (decompression bomb?)",
                      "remove or downscale the image; if it is genuine, raise the dataset's max_image_pixels option");
}

ImageInfo read_image_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits) {
  switch (sniff_format(bytes)) {
    case ImageFormat::jpeg: return jpeg_info(bytes, path, limits);
    case ImageFormat::png: return png_info(bytes, path, limits);
    default: unknown(bytes, path);
  }
}

DecodedRegion decode_region(const std::vector<uint8_t>& bytes, const std::string& path, const Box& box, int64_t out_w,
                            int64_t out_h, bool dct_scaling, const DecodeLimits& limits) {
  switch (sniff_format(bytes)) {
    case ImageFormat::jpeg: return jpeg_decode(bytes, path, &box, out_w, out_h, dct_scaling, limits);
    case ImageFormat::png: return {png_decode(bytes, path, limits), box};
    default: unknown(bytes, path);
  }
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits) {
  switch (sniff_format(bytes)) {
    case ImageFormat::jpeg: return jpeg_decode(bytes, path, nullptr, 0, 0, false, limits).image;
    case ImageFormat::png: return png_decode(bytes, path, limits);
    default: unknown(bytes, path);
  }
}

}  // namespace qplug_transforms
