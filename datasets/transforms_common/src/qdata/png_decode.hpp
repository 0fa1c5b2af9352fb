// qdata/png_decode.hpp - libpng (simplified API) decoding to RGB.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image_decode.hpp"

namespace qplug_transforms {

/// PNG dimensions from the IHDR chunk; throws qsdk::Error(data) naming `path`
/// (also when the image has more pixels than `limits.max_pixels`).
ImageInfo png_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits);

/// Decodes a PNG as 8-bit RGB (palette, grey, 16-bit and alpha converted);
/// a truncated or corrupt file is a data error naming `path`.
Image png_decode(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits);

}  // namespace qplug_transforms
