// qdata/transforms.cpp - see transforms.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/transforms.hpp"

#include "qdata/resize.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace qplug_transforms {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0); }

int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo));
}

Box random_resized_crop_box(int64_t width, int64_t height, const std::vector<double>& scale,
                            const std::vector<double>& ratio, std::mt19937_64& rng) {
  const double area = static_cast<double>(width * height);
  const double log_lo = std::log(ratio[0]);
  const double log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (scale[0] + (scale[1] - scale[0]) * uniform01(rng));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * uniform01(rng));
    // Python's round() is half-to-even, as nearbyint in the default mode.
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const int64_t y = uniform_int(rng, 0, height - h + 1);
      const int64_t x = uniform_int(rng, 0, width - w + 1);
      return {static_cast<double>(x), static_cast<double>(y), static_cast<double>(x + w), static_cast<double>(y + h)};
    }
  }
  // Fallback: centre crop at the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < ratio[0]) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * ratio[1]));
  }
  const int64_t y = (height - h) / 2;
  const int64_t x = (width - w) / 2;
  return {static_cast<double>(x), static_cast<double>(y), static_cast<double>(x + w), static_cast<double>(y + h)};
}

void check_transform_options(const TransformOptions& o, int64_t channels) {
  auto check_pair = [](const std::vector<double>& v, const char* key) {
    if (v.size() != 2) qsdk::config_error(key, "needs exactly two values [lo, hi], got " + std::to_string(v.size()));
    if (!(v[0] <= v[1])) qsdk::config_error(key, "lower bound is above the upper bound", "write [lo, hi]");
  };
  check_pair(o.scale, "scale");
  check_pair(o.ratio, "ratio");
  if (o.scale[1] <= 0) qsdk::config_error("scale", "upper bound must be positive");
  if (o.ratio[0] <= 0) qsdk::config_error("ratio", "aspect ratios must be positive");
  auto check_stats = [channels](const std::vector<double>& v, const char* key) {
    if (v.size() != 1 && static_cast<int64_t>(v.size()) != channels)
      qsdk::config_error(
          key,
          "has " + std::to_string(v.size()) + " values but the images have " + std::to_string(channels) + " channel(s)",
          "give one value or one per channel");
  };
  check_stats(o.mean, "mean");
  check_stats(o.stddev, "std");
  for (double s : o.stddev)
    if (!(s > 0)) qsdk::config_error("std", "standard deviations must be positive");
  if (o.random_resized_crop && o.size == 0)
    qsdk::config_error("size", "random_resized_crop needs an output size", "set size, e.g. 224");
}

Transform::Transform(TransformOptions options, bool train, int64_t channels)
    : options_(std::move(options)), train_(train), channels_(channels) {
  check_transform_options(options_, channels_);
  lut_.resize(static_cast<size_t>(channels_));
  for (int64_t c = 0; c < channels_; ++c) {
    const double mean = options_.mean.size() == 1 ? options_.mean[0] : options_.mean[c];
    const double sd = options_.stddev.size() == 1 ? options_.stddev[0] : options_.stddev[c];
    for (int v = 0; v < 256; ++v) lut_[c][v] = static_cast<float>((static_cast<double>(v) / 255.0 - mean) / sd);
  }
}

namespace {

// torchvision Resize(int): the shorter side becomes `size`, the longer keeps
// the aspect ratio (truncated, as int() in Python).
void resized_dims(int64_t w, int64_t h, int64_t size, int64_t& ow, int64_t& oh) {
  if (size <= 0) {
    ow = w;
    oh = h;
  } else if (w <= h) {
    ow = size;
    oh = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(h) / static_cast<double>(w));
  } else {
    oh = size;
    ow = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(w) / static_cast<double>(h));
  }
}

}  // namespace

Plan Transform::plan(int64_t width, int64_t height, std::mt19937_64& rng) const {
  Plan p;
  const int64_t size = options_.size;
  if (train_ && options_.random_resized_crop) {
    p.box = random_resized_crop_box(width, height, options_.scale, options_.ratio, rng);
    p.out_w = p.out_h = size;
  } else {
    int64_t ow = 0, oh = 0;
    resized_dims(width, height, options_.resize, ow, oh);
    const int64_t pad = train_ ? options_.pad : 0;
    const int64_t pw = ow + 2 * pad, ph = oh + 2 * pad;
    int64_t cx = 0, cy = 0, cw = 0, ch = 0;
    if (size > 0) {
      cw = ch = size;
      if (train_ && pw >= size && ph >= size) {
        cy = uniform_int(rng, 0, ph - size + 1);
        cx = uniform_int(rng, 0, pw - size + 1);
      } else {
        // CenterCrop: Python round() of half the slack (negative = zero border).
        cy = static_cast<int64_t>(std::nearbyint(static_cast<double>(ph - size) / 2.0));
        cx = static_cast<int64_t>(std::nearbyint(static_cast<double>(pw - size) / 2.0));
      }
    }
    const double sx = static_cast<double>(width) / static_cast<double>(ow);
    const double sy = static_cast<double>(height) / static_cast<double>(oh);
    if (pad == 0 && cw > 0 && cx >= 0 && cy >= 0 && cx + cw <= ow && cy + ch <= oh) {
      // Resize-then-crop equals resampling just the crop's preimage (same
      // filter centres and taps), which lets JPEG decode only that region.
      p.box = {cx * sx, cy * sy, (cx + cw) * sx, (cy + ch) * sy};
      p.out_w = cw;
      p.out_h = ch;
    } else {
      p.box = {0, 0, static_cast<double>(width), static_cast<double>(height)};
      p.out_w = ow;
      p.out_h = oh;
      p.pad = pad;
      p.crop_x = cx;
      p.crop_y = cy;
      p.crop_w = cw;
      p.crop_h = ch;
    }
  }
  p.flip = train_ && options_.flip && uniform01(rng) < 0.5;
  return p;
}

std::vector<int64_t> Transform::output_shape(int64_t width, int64_t height) const {
  if (options_.size > 0) return {channels_, options_.size, options_.size};
  int64_t ow = 0, oh = 0;
  resized_dims(width, height, options_.resize, ow, oh);
  const int64_t pad = train_ ? options_.pad : 0;
  return {channels_, oh + 2 * pad, ow + 2 * pad};
}

namespace {

// Maps a coordinate of the padded image to the unpadded one, or -1 for a
// zero border. Reflect mirrors without repeating the edge (numpy 'reflect').
int64_t source_index(int64_t i, int64_t n, bool reflect) {
  if (i >= 0 && i < n) return i;
  if (!reflect || n == 1) return reflect ? 0 : -1;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace

torch::Tensor Transform::apply(const ImageView& image, const Plan& plan) const {
  if (image.channels != channels_)
    throw std::runtime_error("image has " + std::to_string(image.channels) + " channels, expected " +
                             std::to_string(channels_));
  // 1. Resample unless the box is an integral window of the same size.
  Image resampled;
  ImageView src = image;
  const Box& b = plan.box;
  const bool integral = b.x0 == std::floor(b.x0) && b.y0 == std::floor(b.y0) &&
                        b.width() == static_cast<double>(plan.out_w) && b.height() == static_cast<double>(plan.out_h) &&
                        b.x0 >= 0 && b.y0 >= 0 && b.x1 <= static_cast<double>(image.width) &&
                        b.y1 <= static_cast<double>(image.height);
  if (integral) {
    src.data = image.data + static_cast<int64_t>(b.y0) * image.stride + static_cast<int64_t>(b.x0) * image.channels;
    src.width = plan.out_w;
    src.height = plan.out_h;
  } else {
    resampled = resize_box(image, b, plan.out_w, plan.out_h);
    src = resampled.view();
  }

  // 2. Pad + crop + flip as index maps, 3. normalize through the LUT.
  const int64_t pw = src.width + 2 * plan.pad, ph = src.height + 2 * plan.pad;
  const int64_t ow = plan.crop_w > 0 ? plan.crop_w : pw;
  const int64_t oh = plan.crop_h > 0 ? plan.crop_h : ph;
  const bool reflect = options_.pad_mode == PadMode::reflect && plan.pad > 0;
  std::vector<int64_t> xs(static_cast<size_t>(ow));
  for (int64_t x = 0; x < ow; ++x) {
    const int64_t xx = plan.flip ? ow - 1 - x : x;
    const int64_t s = source_index(plan.crop_x + xx - plan.pad, src.width, reflect);
    xs[x] = s < 0 ? -1 : s * src.channels;
  }
  bool any_border = false;
  for (int64_t x : xs) any_border |= x < 0;
  // Whether the columns are a plain (possibly mirrored) run of pixels, as
  // for every RandomResizedCrop sample: the hot loop then steps a pointer
  // instead of reading the index map.
  const int64_t step = plan.flip ? -src.channels : src.channels;
  bool linear = !any_border;
  for (int64_t x = 1; x < ow && linear; ++x) linear = xs[x] == xs[x - 1] + step;
  auto out = torch::empty({channels_, oh, ow}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  const int64_t plane = oh * ow;
  for (int64_t y = 0; y < oh; ++y) {
    const int64_t sy = source_index(plan.crop_y + y - plan.pad, src.height, reflect);
    if (sy >= 0 && !any_border && channels_ == 3) {
      // Hot path (every ImageNet sample): one read of each pixel, three planes.
      const uint8_t* row = src.row(sy);
      const float *l0 = lut_[0].data(), *l1 = lut_[1].data(), *l2 = lut_[2].data();
      float* d0 = dst + y * ow;
      float* d1 = d0 + plane;
      float* d2 = d1 + plane;
      if (linear) {
        const uint8_t* row0 = row + xs[0];
        for (int64_t x = 0; x < ow; ++x) {
          const uint8_t* px = row0 + x * step;
          d0[x] = l0[px[0]];
          d1[x] = l1[px[1]];
          d2[x] = l2[px[2]];
        }
        continue;
      }
      for (int64_t x = 0; x < ow; ++x) {
        const uint8_t* px = row + xs[x];
        d0[x] = l0[px[0]];
        d1[x] = l1[px[1]];
        d2[x] = l2[px[2]];
      }
      continue;
    }
    for (int64_t c = 0; c < channels_; ++c) {
      const auto& lut = lut_[c];
      float* d = dst + c * plane + y * ow;
      if (sy < 0) {
        std::fill(d, d + ow, lut[0]);
        continue;
      }
      const uint8_t* row = src.row(sy) + c;
      for (int64_t x = 0; x < ow; ++x) d[x] = xs[x] < 0 ? lut[0] : lut[row[xs[x]]];
    }
  }
  return out;
}

}  // namespace qplug_transforms
