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

/// PIL's decompression-bomb error threshold (2 * Image.MAX_IMAGE_PIXELS =
/// 2 * 89478485): the images the reference refuses to open, qtool refuses too.
inline constexpr int64_t kDefaultMaxImagePixels = 178956970;

/// Progressive JPEG scans decoded at most, as TurboJPEG's TJFLAG_LIMITSCANS:
/// each scan is a pass over the whole coefficient buffer, so a small file
/// with thousands of tiny scans would cost minutes of CPU.
inline constexpr int kDefaultMaxJpegScans = 500;

/// What an untrusted image file may cost. Checked from the header before any
/// pixel memory is allocated.
struct DecodeLimits {
  int64_t max_pixels = kDefaultMaxImagePixels;  ///< width * height above this is a data error
  int max_scans = kDefaultMaxJpegScans;         ///< progressive JPEG scans above this are a data error
  /// Decode a JPEG whose data ends before its end-of-image marker, the
  /// missing part grey (PIL's LOAD_TRUNCATED_IMAGES, as the reference sets);
  /// false: such a file is a data error (a half-copied dataset).
  bool allow_truncated = false;
};

/// Reads the dimensions of a JPEG or PNG; throws qsdk::Error(data) naming
/// `path` for anything else, a corrupt header, more pixels than
/// `limits.max_pixels`, or (unless `limits.allow_truncated`) a JPEG with no
/// end-of-image marker after its scan data (truncated).
ImageInfo read_image_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits = {});

/// Decodes the part of the image needed to resample source `box` to
/// `out_w` x `out_h`, as RGB. For JPEG only the rows/columns around the box
/// are decoded, and with `dct_scaling` the decoder downscales by 2/4/8 in the
/// DCT domain while the box stays at least `out_w` x `out_h`. PNG decodes
/// fully. Throws qsdk::Error(data) naming `path` on a corrupt file, one over
/// `limits`, or a truncated one (a JPEG only with `limits.allow_truncated`
/// decodes, the missing part grey). Other libjpeg warnings (extraneous bytes,
/// a bad Huffman code) are tolerated, as PIL tolerates them.
DecodedRegion decode_region(const std::vector<uint8_t>& bytes, const std::string& path, const Box& box, int64_t out_w,
                            int64_t out_h, bool dct_scaling, const DecodeLimits& limits = {});

/// Decodes the whole image as RGB (same checks as decode_region).
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits = {});

/// Throws qsdk::Error(data) naming `path` when a `width` x `height` image has
/// more pixels than `limits.max_pixels`.
void check_image_size(int64_t width, int64_t height, const std::string& path, const DecodeLimits& limits);

}  // namespace qplug_transforms
