// qdata/resize.cpp - PIL-compatible separable resampler (see resize.hpp).
// SPDX-License-Identifier: Apache-2.0
#include "qdata/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace qplug_transforms {
namespace {

// 32 bits of accumulator minus 8 bits of pixel minus 2 bits of headroom for
// negative lobes and rounding, as in PIL (so results match it closely).
constexpr int kPrecisionBits = 32 - 8 - 2;

// Filter taps for one axis: output i reads `count[i]` inputs from `first[i]`
// with weights `weights[i * ksize ...]`.
struct Taps {
  int64_t ksize = 0;
  std::vector<int32_t> first;
  std::vector<int32_t> count;
  std::vector<int32_t> weights;  // fixed point (vertical pass)
  std::vector<float> fweights;   // float (horizontal pass)
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

Taps make_taps(int64_t in_size, double in0, double in1, int64_t out_size) {
  const double scale = (in1 - in0) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // triangle support is 1
  Taps taps;
  taps.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(static_cast<size_t>(out_size * taps.ksize), 0);
  taps.fweights.assign(static_cast<size_t>(out_size * taps.ksize), 0.0f);
  std::vector<double> k(taps.ksize);
  const double inv = 1.0 / filter_scale;
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = in0 + (static_cast<double>(o) + 0.5) * scale;
    int64_t lo = static_cast<int64_t>(center - support + 0.5);
    int64_t hi = static_cast<int64_t>(center + support + 0.5);
    lo = std::clamp<int64_t>(lo, 0, in_size - 1);
    hi = std::clamp<int64_t>(hi, lo + 1, in_size);
    int64_t n = std::min<int64_t>(hi - lo, taps.ksize);
    double total = 0;
    for (int64_t j = 0; j < n; ++j) {
      k[j] = triangle((static_cast<double>(j + lo) - center + 0.5) * inv);
      total += k[j];
    }
    if (total <= 0) {  // box narrower than a pixel at an edge: nearest sample
      for (int64_t j = 0; j < n; ++j) k[j] = 0;
      k[0] = 1;
      total = 1;
    }
    taps.first[o] = static_cast<int32_t>(lo);
    taps.count[o] = static_cast<int32_t>(n);
    for (int64_t j = 0; j < n; ++j) {
      taps.fweights[o * taps.ksize + j] = static_cast<float>(k[j] / total);
      const double w = k[j] / total * static_cast<double>(1 << kPrecisionBits);
      taps.weights[o * taps.ksize + j] = static_cast<int32_t>(w < 0 ? w - 0.5 : w + 0.5);
    }
  }
  return taps;
}

inline uint8_t round8(float v) {
  v += 0.5f;
  return static_cast<uint8_t>(v < 0.0f ? 0 : (v > 255.0f ? 255 : static_cast<int>(v)));
}

// Horizontal pass of one row, float accumulation (rounding like PIL's fixed
// point up to ties). Generic in the channel count.
void horizontal_row_scalar(const uint8_t* in, uint8_t* out, const Taps& t, int64_t out_w, int64_t ch) {
  for (int64_t o = 0; o < out_w; ++o) {
    const float* w = t.fweights.data() + o * t.ksize;
    const uint8_t* p = in + static_cast<int64_t>(t.first[o]) * ch;
    const int32_t n = t.count[o];
    for (int64_t c = 0; c < ch; ++c) {
      float a = 0;
      for (int32_t j = 0; j < n; ++j) a += static_cast<float>(p[ch * j + c]) * w[j];
      out[ch * o + c] = round8(a);
    }
  }
}

#if defined(__SSE2__)
// RGB: one 4-lane float multiply-add per tap (the 4th lane, the next pixel's
// red, is ignored). Reads one byte past the last tap's pixel, so the caller
// uses it only where that byte exists (not on the buffer's last row).
void horizontal_row_rgb_sse2(const uint8_t* in, uint8_t* out, const Taps& t, int64_t out_w) {
  const __m128i zero = _mm_setzero_si128();
  const __m128 half = _mm_set1_ps(0.5f);
  for (int64_t o = 0; o < out_w; ++o) {
    const float* w = t.fweights.data() + o * t.ksize;
    const uint8_t* p = in + static_cast<int64_t>(t.first[o]) * 3;
    const int32_t n = t.count[o];
    __m128 acc = half;
    for (int32_t j = 0; j < n; ++j) {
      int32_t px;
      std::memcpy(&px, p + 3 * j, 4);
      __m128i x = _mm_cvtsi32_si128(px);
      x = _mm_unpacklo_epi16(_mm_unpacklo_epi8(x, zero), zero);
      acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(x), _mm_set1_ps(w[j])));
    }
    __m128i r = _mm_cvttps_epi32(acc);  // acc >= 0.5 > 0: truncation == floor
    r = _mm_packus_epi16(_mm_packs_epi32(r, r), zero);
    const int32_t v = _mm_cvtsi128_si32(r);
    std::memcpy(out + 3 * o, &v, 3);
  }
}
#endif

void horizontal_row(const uint8_t* in, uint8_t* out, const Taps& t, int64_t out_w, int64_t ch, bool can_overread) {
#if defined(__SSE2__)
  if (ch == 3 && can_overread) return horizontal_row_rgb_sse2(in, out, t, out_w);
#endif
  (void)can_overread;
  horizontal_row_scalar(in, out, t, out_w, ch);
}

// Vertical pass: whole rows at a time so the inner loop vectorizes; cloned
// for AVX2 where the CPU has it.
__attribute__((target_clones("avx2", "default"))) void vertical_pass(const uint8_t* mid, int64_t mid_stride,
                                                                     int64_t row_lo, const Taps& ty, int64_t out_h,
                                                                     int64_t row_bytes, int32_t* acc, uint8_t* out) {
  for (int64_t o = 0; o < out_h; ++o) {
    for (int64_t i = 0; i < row_bytes; ++i) acc[i] = 1 << (kPrecisionBits - 1);
    const int32_t* w = ty.weights.data() + o * ty.ksize;
    for (int32_t j = 0; j < ty.count[o]; ++j) {
      const uint8_t* in = mid + (ty.first[o] + j - row_lo) * mid_stride;
      const int32_t wj = w[j];
      for (int64_t i = 0; i < row_bytes; ++i) acc[i] += in[i] * wj;
    }
    uint8_t* dst = out + o * row_bytes;
    for (int64_t i = 0; i < row_bytes; ++i) {
      const int32_t v = acc[i] >> kPrecisionBits;
      dst[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}

}  // namespace

Image resize_box(const ImageView& src, const Box& box_in, int64_t out_w, int64_t out_h) {
  if (out_w <= 0 || out_h <= 0 || src.width <= 0 || src.height <= 0)
    throw std::invalid_argument("resize_box: empty image or output size");
  Box box = box_in;
  box.x0 = std::clamp(box.x0, 0.0, static_cast<double>(src.width));
  box.x1 = std::clamp(box.x1, box.x0, static_cast<double>(src.width));
  box.y0 = std::clamp(box.y0, 0.0, static_cast<double>(src.height));
  box.y1 = std::clamp(box.y1, box.y0, static_cast<double>(src.height));
  if (box.width() <= 0 || box.height() <= 0) throw std::invalid_argument("resize_box: empty box");
  const int64_t c = src.channels;

  // An axis is a plain copy when the box edge is integral and no scaling occurs.
  const bool copy_x = box.x0 == std::floor(box.x0) && box.width() == static_cast<double>(out_w);
  const bool copy_y = box.y0 == std::floor(box.y0) && box.height() == static_cast<double>(out_h);

  Taps ty;
  int64_t row_lo = 0, row_hi = 0;
  if (copy_y) {
    row_lo = static_cast<int64_t>(box.y0);
    row_hi = row_lo + out_h;
  } else {
    ty = make_taps(src.height, box.y0, box.y1, out_h);
    row_lo = ty.first.front();
    row_hi = 0;
    for (int64_t o = 0; o < out_h; ++o) {
      row_lo = std::min<int64_t>(row_lo, ty.first[o]);
      row_hi = std::max<int64_t>(row_hi, ty.first[o] + ty.count[o]);
    }
  }

  // Pass 1 (horizontal) over the rows the vertical pass needs, into a
  // per-thread scratch buffer (no page faults in the steady state).
  thread_local std::vector<uint8_t> mid_buffer;
  thread_local std::vector<int32_t> acc;
  const int64_t row_bytes = out_w * c;
  const int64_t rows = row_hi - row_lo;
  Image out(out_w, copy_y ? rows : out_h, c);
  uint8_t* mid = copy_y ? out.pixels.data() : nullptr;
  if (!copy_y) {
    if (mid_buffer.size() < static_cast<size_t>(rows * row_bytes))
      mid_buffer.resize(static_cast<size_t>(rows * row_bytes));
    mid = mid_buffer.data();
  }
  if (copy_x) {
    const int64_t x0 = static_cast<int64_t>(box.x0);
    for (int64_t y = row_lo; y < row_hi; ++y)
      std::memcpy(mid + (y - row_lo) * row_bytes, src.row(y) + x0 * c, static_cast<size_t>(row_bytes));
  } else {
    const Taps tx = make_taps(src.width, box.x0, box.x1, out_w);
    for (int64_t y = row_lo; y < row_hi; ++y)
      horizontal_row(src.row(y), mid + (y - row_lo) * row_bytes, tx, out_w, c, y + 1 < src.height);
  }
  if (copy_y) return out;

  // Pass 2 (vertical).
  if (acc.size() < static_cast<size_t>(row_bytes)) acc.resize(static_cast<size_t>(row_bytes));
  vertical_pass(mid, row_bytes, row_lo, ty, out_h, row_bytes, acc.data(), out.pixels.data());
  return out;
}

}  // namespace qplug_transforms
