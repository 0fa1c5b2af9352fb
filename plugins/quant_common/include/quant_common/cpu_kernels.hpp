// quant_common/cpu_kernels.hpp - building blocks of the quantizer plugins' fused
// CPU kernels (plugins/<method>/src/<method>_kernels.cpp): fixed-grain parallel
// loops with deterministic reductions, the branch-free round, the exact
// reciprocal, and one baseline/AVX2 dispatch for the element loops.
// Include it only from kernel files built with -O3 -fno-trapping-math (see
// cmake/QtoolQuantMath.cmake).
#pragma once

#include <quant_common/kernels.hpp>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

// Kernels may compile a loop a second time for AVX2 (x86-64 with GCC/Clang)
// and pick it at run time; QC_TARGET_AVX2 deliberately omits FMA so that no
// multiply-add is contracted and results equal the baseline build's.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(__AVX2__)
#define QC_HAVE_AVX2_DISPATCH 1
#define QC_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define QC_HAVE_AVX2_DISPATCH 0
#define QC_TARGET_AVX2
#endif
#define QC_ALWAYS_INLINE __attribute__((always_inline))

namespace qplug_quant_common::detail {

#if QC_HAVE_AVX2_DISPATCH
/// Whether the CPU runs AVX2 code (checked once).
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

template <class Body, class Signature = decltype(&Body::run)>
struct IsaDispatch;

/// One element loop compiled for the build's baseline ISA and, behind a CPU
/// check, for AVX2. `Body` is a struct whose static `run` (QC_ALWAYS_INLINE, so
/// that it is compiled inside each caller with that caller's target) holds the
/// loop; `IsaDispatch<Body>::run` has the same signature and picks the build at
/// run time. Both builds perform the same IEEE operations per element (no FMA,
/// no reassociation: sums keep their explicit lanes), so they give bit-identical
/// results; the division-bound loops run about twice as fast on 8 lanes.
/// `&IsaDispatch<Body>::run` is a plain function pointer, so a kernel may pick
/// among template instances once per call and run the pointer per group run.
template <class Body, class R, class... A>
struct IsaDispatch<Body, R (*)(A...)> {
  /// Body::run(a...) in the best build the CPU runs.
  static R run(A... a) {
#if QC_HAVE_AVX2_DISPATCH
    if (cpu_has_avx2()) return run_avx2(a...);
#endif
    return run_base(a...);
  }

 private:
  static R run_base(A... a) { return Body::run(a...); }
#if QC_HAVE_AVX2_DISPATCH
  QC_TARGET_AVX2 static R run_avx2(A... a) { return Body::run(a...); }
#endif
};

/// Elements per parallel chunk; fixed so that reductions are deterministic.
constexpr int64_t kGrain = 16384;

/// Calls body(begin, end, group) over maximal runs of [b, e) that share one group.
template <class F>
inline void for_each_run(int64_t b, int64_t e, const GroupLayout& l, F&& body) {
  const int64_t run = l.inner * l.per_group;
  int64_t i = b;
  while (i < e) {
    const int64_t g = l.group_of(i);
    const int64_t stop = std::min(e, (i / run + 1) * run);
    body(i, stop, g);
    i = stop;
  }
}

/// Parallel loop over fixed chunks of [0, numel); body(b, e, acc) adds into
/// `width` double accumulators owned by the chunk; returns their total.
template <class F>
inline std::vector<double> chunked_sums(int64_t numel, int64_t width, F&& body) {
  const int64_t chunks = std::max<int64_t>(1, (numel + kGrain - 1) / kGrain);
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t b = c * kGrain;
      const int64_t e = std::min(numel, b + kGrain);
      body(b, e, partial.data() + c * width);
    }
  });
  std::vector<double> out(static_cast<size_t>(width), 0.0);
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t k = 0; k < width; ++k) out[k] += partial[c * width + k];
  return out;
}

/// Calls body(i, c) for i in [b, e), where body writes K float contributions of
/// element i into c[0..K), and adds their sums to out[0..K). Eight float lanes
/// keep the loop vectorisable without reassociating any sum; the lanes hold at
/// most kGrain / 8 terms each before they are added in double.
template <int K, class F>
inline void lane_sums(int64_t b, int64_t e, double* out, F&& body) {
  constexpr int kLanes = 8;
  float acc[K][kLanes] = {};
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      float c[K];
      body(i + j, c);
      for (int k = 0; k < K; ++k) acc[k][j] += c[k];
    }
  }
  for (; i < e; ++i) {
    float c[K];
    body(i, c);
    for (int k = 0; k < K; ++k) acc[k][0] += c[k];
  }
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < kLanes; ++j) out[k] += static_cast<double>(acc[k][j]);
}

/// Parallel elementwise loop over [0, numel).
template <class F>
inline void parallel_elements(int64_t numel, F&& body) {
  at::parallel_for(0, numel, kGrain, [&](int64_t b, int64_t e) { body(b, e); });
}

/// True for tensors the fused CPU kernels handle.
inline bool fused_cpu_ok(const at::Tensor& t) {
  return use_fused_kernels() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
         !t.is_complex() && t.layout() == at::kStrided;
}

/// Round half to even (torch.round semantics) for |v| < 2^22. Adding and
/// subtracting 1.5 * 2^23 rounds to an integer in the default round-to-nearest-even
/// mode without a libm call or a branch, so the loops vectorise. Every caller
/// rounds a clamped value times a level count (|v| <= 256). (Zero's sign may
/// differ from nearbyint's; the two compare equal.)
inline float round_even(float v) {
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

/// 1 / d when multiplying by it gives exactly k / d for every integer k in
/// [0, kmax], else 0. A kernel that divides a rounded level index by a level
/// count may then multiply instead, bit-identically: a division costs several
/// times a multiplication, and the LSQ loops are bound by their divisions.
inline float exact_reciprocal(float d, int64_t kmax) {
  if (!(d > 0.f) || !std::isfinite(d) || kmax < 0 || kmax > 65536) return 0.f;
  const float r = 1.f / d;
  for (int64_t k = 0; k <= kmax; ++k) {
    const float kf = static_cast<float>(k);
    if (kf * r != kf / d) return 0.f;
  }
  return r;
}

/// Float copy of a small parameter tensor (one value per group).
inline std::vector<float> small_values(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace qplug_quant_common::detail
