// resize_bitcheck.cpp - the resampler of the working tree against an older
// one (built by tools/bench/resize_bitcheck.sh from a git revision, renamed
// into namespace qplug_transforms_old): byte-for-byte on random images,
// boxes, sizes, strides and channel counts (a quarter ImageNet-like
// RandomResizedCrop to 224), then the time per 224x224 RandomResizedCrop
// resize of a 500x375 RGB image for both. Exit status 1 on any mismatch.
//
//   resize_bitcheck [CASES=20000]
// SPDX-License-Identifier: Apache-2.0
#include "qdata/resize.hpp"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
namespace qplug_transforms_old {
qplug_transforms::Image resize_box(const qplug_transforms::ImageView&, const qplug_transforms::Box&, int64_t, int64_t);
}
namespace qt = qplug_transforms;
int main(int argc, char** argv) {
  std::mt19937_64 g(42);
  auto U = [&](double a, double b) { return a + (b - a) * (double)(g() >> 11) * (1.0 / 9007199254740992.0); };
  auto I = [&](int64_t a, int64_t b) { return a + (int64_t)(g() % (uint64_t)(b - a + 1)); };
  long cases = 0, bytes = 0, mism = 0, both_threw = 0;
  const int N = argc > 1 ? atoi(argv[1]) : 20000;
  for (int it = 0; it < N; ++it) {
    const bool imagenet = it % 4 == 0;
    const int64_t c = imagenet ? 3 : (g() % 3 == 0 ? 1 : 3);
    const int64_t w = imagenet ? I(300, 520) : I(1, 200), h = imagenet ? I(250, 520) : I(1, 200);
    const int64_t pad = g() % 2 ? 0 : I(0, 40);
    const int64_t stride = w * c + pad;
    std::vector<uint8_t> buf(stride * (h - 1) + w * c);  // exactly to the end of the last row
    const int mode = g() % 3;  // random, smooth, extreme
    for (auto& v : buf) v = mode == 0 ? g() : (mode == 2 ? (g() % 2 ? 255 : 0) : 0);
    if (mode == 1) for (int64_t i = 0; i < (int64_t)buf.size(); ++i) buf[i] = (uint8_t)(128 + 100 * std::sin(i * 0.01) + (int)(g() % 7));
    qt::ImageView v{buf.data(), w, h, c, stride};
    qt::Box b;
    int64_t ow, oh;
    if (imagenet) {
      const double area = w * h * U(0.08, 1.0), ar = std::exp(U(std::log(0.75), std::log(4.0 / 3)));
      int64_t cw = std::min<int64_t>(w, std::max<int64_t>(1, std::llround(std::sqrt(area * ar))));
      int64_t ch = std::min<int64_t>(h, std::max<int64_t>(1, std::llround(std::sqrt(area / ar))));
      double x0 = I(0, w - cw), y0 = I(0, h - ch);
      if (g() % 2) { x0 += U(-0.5, 0.5); y0 += U(-0.5, 0.5); }  // decode-region offsets (DCT scaled)
      b = {x0, y0, x0 + cw, y0 + ch};
      ow = oh = 224;
      if (g() % 4 == 0) { ow = I(1, 300); oh = I(1, 300); }
    } else {
      const double x0 = g() % 3 ? (double)I(0, w - 1) : U(-2, w), y0 = g() % 3 ? (double)I(0, h - 1) : U(-2, h);
      b = {x0, y0, x0 + U(0.01, w + 3), y0 + U(0.01, h + 3)};
      if (g() % 4 == 0) b = {0, 0, (double)w, (double)h};
      ow = I(1, 260);
      oh = I(1, 260);
      if (g() % 5 == 0) ow = (int64_t)(b.x1 - b.x0);
    }
    qt::Image a, n;
    bool ta = false, tn = false;
    try { a = qplug_transforms_old::resize_box(v, b, ow, oh); } catch (const std::invalid_argument&) { ta = true; }
    try { n = qt::resize_box(v, b, ow, oh); } catch (const std::invalid_argument&) { tn = true; }
    if (ta || tn) {
      if (ta != tn) { std::printf("throw mismatch at %d\n", it); return 1; }
      ++both_threw;
      continue;
    }
    ++cases;
    bytes += a.pixels.size();
    if (a.width != n.width || a.height != n.height || a.pixels != n.pixels) {
      ++mism;
      if (mism < 5) std::printf("MISMATCH it=%d w=%ld h=%ld c=%ld box=%g,%g,%g,%g out=%ldx%ld\n", it, w, h, c, b.x0, b.y0, b.x1, b.y1, ow, oh);
    }
  }
  std::printf("bit-identity: %ld cases (%ld output bytes), %ld mismatching, %ld both threw\n", cases, bytes, mism, both_threw);
  // Timing: ImageNet-like RandomResizedCrop boxes on a 500x375 RGB image.
  const int64_t w = 500, h = 375;
  std::vector<uint8_t> buf(w * h * 3);
  for (auto& x : buf) x = g();
  qt::ImageView v{buf.data(), w, h, 3, w * 3};
  std::vector<qt::Box> boxes;
  for (int i = 0; i < 400; ++i) {
    const double area = w * h * U(0.08, 1.0), ar = std::exp(U(std::log(0.75), std::log(4.0 / 3)));
    int64_t cw = std::min<int64_t>(w, std::llround(std::sqrt(area * ar))), ch = std::min<int64_t>(h, std::llround(std::sqrt(area / ar)));
    double x0 = I(0, w - cw), y0 = I(0, h - ch);
    boxes.push_back({x0, y0, x0 + cw, y0 + ch});
  }
  for (int rep = 0; rep < 3; ++rep) {
    for (int which = 0; which < 2; ++which) {
      auto t0 = std::chrono::steady_clock::now();
      long sum = 0;
      for (const auto& b : boxes) {
        auto o = which ? qt::resize_box(v, b, 224, 224) : qplug_transforms_old::resize_box(v, b, 224, 224);
        sum += o.pixels[1000];
      }
      double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / boxes.size();
      std::printf("%s: %.1f us per 224x224 RandomResizedCrop resize (chk %ld)\n", which ? "new" : "old", us, sum);
    }
  }
  return mism != 0;
}
