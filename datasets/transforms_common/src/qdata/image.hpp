// qdata/image.hpp - 8-bit interleaved images and boxes, the currency of the
// decode/transform pipeline.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qplug_transforms {

/// A rectangle in (possibly fractional) pixel coordinates: [x0, x1) x [y0, y1).
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;     ///< corners
  double width() const { return x1 - x0; }   ///< x1 - x0
  double height() const { return y1 - y0; }  ///< y1 - y0
};

/// A read-only view of an interleaved (HWC) uint8 image.
struct ImageView {
  const uint8_t* data = nullptr;  ///< first pixel
  int64_t width = 0;              ///< columns
  int64_t height = 0;             ///< rows
  int64_t channels = 0;           ///< 1 (gray) or 3 (RGB)
  int64_t stride = 0;             ///< bytes between rows
  /// Row `y`.
  const uint8_t* row(int64_t y) const { return data + y * stride; }
};

/// An owned interleaved (HWC) uint8 image with tightly packed rows.
struct Image {
  int64_t width = 0;            ///< columns
  int64_t height = 0;           ///< rows
  int64_t channels = 0;         ///< 1 or 3
  std::vector<uint8_t> pixels;  ///< height * width * channels bytes

  Image() = default;
  /// An uninitialized w x h x c image.
  Image(int64_t w, int64_t h, int64_t c) : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c)) {}
  /// The view of the whole image.
  ImageView view() const { return {pixels.data(), width, height, channels, width * channels}; }
  /// Mutable row `y`.
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
};

}  // namespace qplug_transforms
