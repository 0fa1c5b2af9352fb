// qdata/image_decode.hpp - JPEG / PNG decoding to RGB, optionally of just the
// region a transform needs.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace qplug_transforms {

/// Container formats recognised from their magic bytes.
enum class ImageFormat { jpeg, png, unknown };

/// The format of `bytes` from its signature.
ImageFormat sniff_format(const std::vector<uint8_t>& bytes);

/// Dimensions read from the header only.
struct ImageInfo {
  int64_t width = 0;   ///< columns
  int64_t height = 0;  ///< rows
};

/// A decoded image and where a requested source box lies in it.
struct DecodedRegion {
  Image image;  ///< RGB pixels (possibly a sub-region, possibly DCT-downscaled)
  Box box;      ///< the requested box in `image`'s coordinates
};

/// Reads the dimensions of a JPEG or PNG; throws qsdk::Error(data) naming
/// `path` for anything else or a corrupt header.
ImageInfo read_image_info(const std::vector<uint8_t>& bytes, const std::string& path);

/// Decodes the part of the image needed to resample source `box` to
/// `out_w` x `out_h`, as RGB. For JPEG only the rows/columns around the box
/// are decoded, and with `dct_scaling` the decoder downscales by 2/4/8 in the
/// DCT domain while the box stays at least `out_w` x `out_h`. PNG decodes
/// fully. Throws qsdk::Error(data) naming `path` on a corrupt file; a JPEG
/// whose data ends early is tolerated (the missing part is grey), as the
/// reference tolerates truncated JPEGs.
DecodedRegion decode_region(const std::vector<uint8_t>& bytes, const std::string& path, const Box& box, int64_t out_w,
                            int64_t out_h, bool dct_scaling);

/// Decodes the whole image as RGB.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& path);

}  // namespace qplug_transforms
