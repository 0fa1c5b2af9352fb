// qdata/resize.cpp - PIL-compatible separable resampler (see resize.hpp).
// SPDX-License-Identifier: Apache-2.0
#include "qdata/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define QDATA_RESIZE_AVX2 1
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

struct RgbGroups;  // AVX2 / AVX-512 horizontal pass tables (x86-64 only)

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
// Never inlined: inside the AVX-512 function (AVX512VL has 128-bit fused
// multiply-adds) the compiler could contract its multiply and add.
__attribute__((noinline)) void rgb_pixel_sse2(const uint8_t* in, uint8_t* out, const Taps& t, int64_t o) {
  const __m128i zero = _mm_setzero_si128();
  const float* w = t.fweights.data() + o * t.ksize;
  const uint8_t* p = in + static_cast<int64_t>(t.first[o]) * 3;
  const int32_t n = t.count[o];
  __m128 acc = _mm_set1_ps(0.5f);
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

void horizontal_row_rgb_sse2(const uint8_t* in, uint8_t* out, const Taps& t, int64_t out_w) {
  for (int64_t o = 0; o < out_w; ++o) rgb_pixel_sse2(in, out, t, o);
}
#endif

#if defined(QDATA_RESIZE_AVX2)
// Groups of `size` RGB output pixels (2 with AVX2, 4 with AVX-512) computed
// together, 4 float lanes each (R, G, B and a zero lane). All pixels of a
// group read `count` taps (the group's largest count; the shorter ones'
// extra taps have weight 0, and acc + 0 * px == acc exactly since acc >=
// 0.5), so each lane does the very float operations of rgb_pixel_sse2 in
// the same order: the output is bit-identical. One load per tap covers the
// whole group when its last pixel's window starts at most `max_offset`
// pixels after its first's; a byte permutation per group then picks each
// pixel's R, G, B as zero-extended 32-bit lanes.
struct RgbGroups {
  int64_t size = 0;              // output pixels per group
  std::vector<int32_t> first;    // first input pixel of the group's first output
  std::vector<int32_t> count;    // taps of the group; 0 = not grouped (per-pixel path)
  std::vector<uint8_t> select;   // per group 16 * size bytes: lane byte 16k + 4c <- 3 * offset_k + c, else 0x80
  std::vector<float> weights;    // per group and tap: 4 x w[k][j] for each pixel k
};

RgbGroups make_rgb_groups(const Taps& t, int64_t out_w, int64_t size, int32_t max_offset) {
  RgbGroups g;
  g.size = size;
  const int64_t groups = out_w / size;
  g.first.resize(groups);
  g.count.assign(groups, 0);
  g.select.assign(static_cast<size_t>(groups * 16 * size), 0x80);
  g.weights.assign(static_cast<size_t>(groups * t.ksize * 4 * size), 0.0f);
  for (int64_t i = 0; i < groups; ++i) {
    const int64_t o0 = i * size;
    g.first[i] = t.first[o0];
    const int32_t span = t.first[o0 + size - 1] - t.first[o0];
    if (span < 0 || span > max_offset) continue;
    int32_t n = 0;
    for (int64_t k = 0; k < size; ++k) n = std::max(n, t.count[o0 + k]);
    g.count[i] = n;
    uint8_t* sel = g.select.data() + i * 16 * size;
    float* w = g.weights.data() + i * t.ksize * 4 * size;
    for (int64_t k = 0; k < size; ++k) {
      const int32_t d = t.first[o0 + k] - t.first[o0];
      for (int c = 0; c < 3; ++c) sel[16 * k + 4 * c] = static_cast<uint8_t>(3 * d + c);
      for (int32_t j = 0; j < n; ++j)  // fweights is 0 past count
        for (int c = 0; c < 4; ++c) w[4 * size * j + 4 * k + c] = t.fweights[(o0 + k) * t.ksize + j];
    }
  }
  return g;
}

// Pairs: one 16-byte load per tap broadcast to both 128-bit halves, a
// per-half byte shuffle (so a pair spans at most 4 pixels: 3 * 4 + 2 < 16).
// Target "avx2" only, not "fma": a fused multiply-add would round once
// instead of twice and change the output.
constexpr int32_t kMaxPairOffset = 4;
__attribute__((target("avx2"))) void horizontal_row_rgb_avx2(const uint8_t* in, uint8_t* out, const Taps& t,
                                                             const RgbGroups& pairs, int64_t out_w, int64_t readable) {
  const __m128i pack6 = _mm_setr_epi8(0, 1, 2, 4, 5, 6, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256 half = _mm256_set1_ps(0.5f);
  const int64_t ksize8 = t.ksize * 8;
  const int64_t npairs = out_w / 2;
  for (int64_t p = 0; p < npairs; ++p) {
    const int32_t n = pairs.count[p];
    const int64_t base = 3 * static_cast<int64_t>(pairs.first[p]);
    if (n == 0 || base + 3 * (n - 1) + 16 > readable) {
      rgb_pixel_sse2(in, out, t, 2 * p);
      rgb_pixel_sse2(in, out, t, 2 * p + 1);
      continue;
    }
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pairs.select.data() + 32 * p));
    const float* w = pairs.weights.data() + p * ksize8;
    const uint8_t* src = in + base;
    __m256 acc = half;
    for (int32_t j = 0; j < n; ++j) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * j));
      const __m256i x = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(bytes), mask);
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(x), _mm256_loadu_ps(w + 8 * j)));
    }
    const __m256i r = _mm256_cvttps_epi32(acc);  // acc >= 0.5 > 0: truncation == floor
    const __m128i r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    const __m128i r8 = _mm_shuffle_epi8(_mm_packus_epi16(r16, r16), pack6);
    const int64_t v = _mm_cvtsi128_si64(r8);
    std::memcpy(out + 6 * p, &v, 6);
  }
  for (int64_t o = 2 * npairs; o < out_w; ++o) rgb_pixel_sse2(in, out, t, o);
}

// Quads: one 64-byte load per tap and a byte permutation across the whole
// register (AVX-512 VBMI), so a group may span 20 pixels (3 * 20 + 2 < 64).
// The multiply and add use the explicit-rounding forms, which the compiler
// never contracts into a fused multiply-add (AVX-512F has one).
constexpr int32_t kMaxQuadOffset = 20;
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) void horizontal_row_rgb_avx512(
    const uint8_t* in, uint8_t* out, const Taps& t, const RgbGroups& quads, int64_t out_w, int64_t readable) {
  // Bytes 16k + 4c (c < 3) of each group come from the row, the rest are 0.
  const __mmask64 keep = 0x0111011101110111ULL;
  const __m128i pack12 = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  const __m512 half = _mm512_set1_ps(0.5f);
  const int64_t ksize16 = t.ksize * 16;
  const int64_t nquads = out_w / 4;
  for (int64_t q = 0; q < nquads; ++q) {
    const int32_t n = quads.count[q];
    const int64_t base = 3 * static_cast<int64_t>(quads.first[q]);
    if (n == 0 || base + 3 * (n - 1) + 64 > readable) {
      for (int64_t o = 4 * q; o < 4 * q + 4; ++o) rgb_pixel_sse2(in, out, t, o);
      continue;
    }
    const __m512i sel = _mm512_loadu_si512(quads.select.data() + 64 * q);
    const float* w = quads.weights.data() + q * ksize16;
    const uint8_t* src = in + base;
    __m512 acc = half;
    for (int32_t j = 0; j < n; ++j) {
      const __m512i x = _mm512_maskz_permutexvar_epi8(keep, sel, _mm512_loadu_si512(src + 3 * j));
      const __m512 prod =
          _mm512_mul_round_ps(_mm512_cvtepi32_ps(x), _mm512_loadu_ps(w + 16 * j), _MM_FROUND_CUR_DIRECTION);
      acc = _mm512_add_round_ps(acc, prod, _MM_FROUND_CUR_DIRECTION);
    }
    // acc >= 0.5 > 0: truncation == floor; unsigned saturation to 255 as
    // rgb_pixel_sse2's saturating packs.
    const __m128i r8 = _mm_shuffle_epi8(_mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(acc)), pack12);
    _mm_mask_storeu_epi8(out + 12 * q, 0x0FFF, r8);
  }
  for (int64_t o = 4 * nquads; o < out_w; ++o) rgb_pixel_sse2(in, out, t, o);
}

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

bool cpu_has_avx512vbmi() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi");
  return has;
}
#endif

// `readable`: bytes that may be read from `in` on (the rest of the buffer).
void horizontal_row(const uint8_t* in, uint8_t* out, const Taps& t, const RgbGroups* rgb_groups, int64_t out_w, int64_t ch,
                    bool can_overread, int64_t readable) {
#if defined(QDATA_RESIZE_AVX2)
  if (ch == 3 && can_overread && rgb_groups) {
    if (rgb_groups->size == 4) return horizontal_row_rgb_avx512(in, out, t, *rgb_groups, out_w, readable);
    return horizontal_row_rgb_avx2(in, out, t, *rgb_groups, out_w, readable);
  }
#endif
#if defined(__SSE2__)
  if (ch == 3 && can_overread) return horizontal_row_rgb_sse2(in, out, t, out_w);
#endif
  (void)can_overread;
  (void)rgb_groups;
  (void)readable;
  horizontal_row_scalar(in, out, t, out_w, ch);
}

#if defined(QDATA_RESIZE_AVX2)
// Vertical pass with AVX2 intrinsics: 16 bytes of a row at a time, summed
// over all taps in registers (the auto-vectorized vertical_pass stores and
// reloads its accumulator row once per tap). Integer arithmetic: any order
// gives the same sums, so the output equals vertical_pass's exactly.
__attribute__((target("avx2"))) void vertical_pass_avx2(const uint8_t* mid, int64_t mid_stride, int64_t row_lo,
                                                        const Taps& ty, int64_t out_h, int64_t row_bytes,
                                                        uint8_t* out) {
  const __m256i init = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  for (int64_t o = 0; o < out_h; ++o) {
    const int32_t* w = ty.weights.data() + o * ty.ksize;
    const int32_t n = ty.count[o];
    const uint8_t* in = mid + (ty.first[o] - row_lo) * mid_stride;
    uint8_t* dst = out + o * row_bytes;
    int64_t i = 0;
    for (; i + 16 <= row_bytes; i += 16) {
      __m256i a0 = init, a1 = init;
      for (int32_t j = 0; j < n; ++j) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + j * mid_stride + i));
        const __m256i wj = _mm256_set1_epi32(w[j]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(x), wj));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(x, 8)), wj));
      }
      a0 = _mm256_srai_epi32(a0, kPrecisionBits);
      a1 = _mm256_srai_epi32(a1, kPrecisionBits);
      // Saturating packs clamp to [0, 255] as vertical_pass does.
      const __m128i lo = _mm_packs_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
      const __m128i hi = _mm_packs_epi32(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_packus_epi16(lo, hi));
    }
    for (; i < row_bytes; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int32_t j = 0; j < n; ++j) acc += in[j * mid_stride + i] * w[j];
      const int32_t v = acc >> kPrecisionBits;
      dst[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}
#endif

// Vertical pass: whole rows at a time so the inner loop vectorizes; cloned
// for AVX2 where the CPU has it (vertical_pass_avx2 is used there instead).
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
    const RgbGroups* pairs = nullptr;
#if defined(QDATA_RESIZE_AVX2)
    RgbGroups rgb_groups;
    // QDATA_RESIZE_NO_AVX512 (diagnostic, read once) takes the AVX2 path on
    // an AVX-512 machine, to time or compare the two; the output is the same.
    static const bool use_avx512 = cpu_has_avx512vbmi() && !std::getenv("QDATA_RESIZE_NO_AVX512");
    if (c == 3 && (use_avx512 || cpu_has_avx2())) {
      rgb_groups = use_avx512 ? make_rgb_groups(tx, out_w, 4, kMaxQuadOffset)
                              : make_rgb_groups(tx, out_w, 2, kMaxPairOffset);
      pairs = &rgb_groups;
    }
#endif
    // Bytes readable from the start of row y: to the end of the last row.
    const int64_t last_row_end = (src.height - 1) * src.stride + src.width * c;
    for (int64_t y = row_lo; y < row_hi; ++y)
      horizontal_row(src.row(y), mid + (y - row_lo) * row_bytes, tx, pairs, out_w, c, y + 1 < src.height,
                     last_row_end - y * src.stride);
  }
  if (copy_y) return out;

  // Pass 2 (vertical).
#if defined(QDATA_RESIZE_AVX2)
  if (cpu_has_avx2()) {
    vertical_pass_avx2(mid, row_bytes, row_lo, ty, out_h, row_bytes, out.pixels.data());
    return out;
  }
#endif
  if (acc.size() < static_cast<size_t>(row_bytes)) acc.resize(static_cast<size_t>(row_bytes));
  vertical_pass(mid, row_bytes, row_lo, ty, out_h, row_bytes, acc.data(), out.pixels.data());
  return out;
}

}  // namespace qplug_transforms
