// qdata/resize.hpp - separable antialiased bilinear resampling of uint8 images.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image.hpp"

namespace qplug_transforms {

/// Resamples region `box` of `src` (fractional source coordinates, clipped to
/// the image) to an `out_w` x `out_h` image with a triangle filter whose
/// support grows with the downscale factor, i.e. bilinear with antialias as in
/// PIL's `Image.resize(size, BILINEAR, box)` (which torchvision uses on PIL
/// images). Two separable passes in 22-bit fixed point; a pass whose axis is
/// an exact integer-aligned copy is skipped.
Image resize_box(const ImageView& src, const Box& box, int64_t out_w, int64_t out_h);

}  // namespace qplug_transforms
