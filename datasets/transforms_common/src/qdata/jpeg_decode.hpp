// qdata/jpeg_decode.hpp - libjpeg-turbo decoding with region + DCT scaling.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image_decode.hpp"

namespace qplug_transforms {

/// JPEG header dimensions; throws qsdk::Error(data) naming `path` (also for
/// an image over `limits` or, unless allowed, a truncated one).
ImageInfo jpeg_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits);

/// Decodes the region of a JPEG around `box` (see decode_region). With no
/// box (`box == nullptr`) the whole image at full size.
DecodedRegion jpeg_decode(const std::vector<uint8_t>& bytes, const std::string& path, const Box* box, int64_t out_w,
                          int64_t out_h, bool dct_scaling, const DecodeLimits& limits);

}  // namespace qplug_transforms
