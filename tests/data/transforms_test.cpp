// transforms_test.cpp - resampler, transform plans and image decoding of the
// transforms_common library.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/transforms.hpp"
#include "qdata/file_io.hpp"
#include "qdata/image_decode.hpp"
#include "qdata/resize.hpp"
#include "sample_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace qt = qplug_transforms;
using qtool_samples::TempDir;

namespace {

qt::Image make_image(int w, int h, uint64_t seed) {
  qt::Image img(w, h, 3);
  img.pixels = qtool_samples::smooth_rgb(w, h, seed);
  return img;
}

torch::Tensor to_float_nchw(const qt::Image& img) {
  auto t =
      torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {img.height, img.width, img.channels}, torch::kUInt8);
  return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
}

double max_abs_diff(const qt::Image& a, const qt::Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  double m = 0;
  for (size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i)
    m = std::max(m, std::fabs(double(a.pixels[i]) - double(b.pixels[i])));
  return m;
}

template <class F>
std::string data_error_place(F&& f) {
  try {
    f();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::data) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
    return e.place() + " | " + e.message();
  }
  ADD_FAILURE() << "no qsdk::Error thrown";
  return {};
}

}  // namespace

// The resampler implements PIL's antialiased bilinear filter, which is also
// what torch's interpolate(bilinear, antialias=True) computes on floats.
TEST(Resize, MatchesTorchAntialiasedBilinear) {
  const qt::Image src = make_image(97, 61, 1);
  const auto ref_in = to_float_nchw(src);
  for (auto [w, h] : {std::pair<int, int>{40, 30}, {150, 100}, {97, 20}, {13, 61}}) {
    const qt::Image out = qt::resize_box(src.view(), {0, 0, 97, 61}, w, h);
    namespace F = torch::nn::functional;
    auto ref = F::interpolate(ref_in, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{h, w})
                                          .mode(torch::kBilinear)
                                          .align_corners(false)
                                          .antialias(true));
    auto mine = to_float_nchw(out);
    // Two uint8 roundings (after each pass, as PIL): at most ~1 level off,
    // about half a level on average.
    EXPECT_LE((mine - ref).abs().max().item<float>(), 1.51f) << w << "x" << h;
    EXPECT_LE((mine - ref).abs().mean().item<float>(), 0.4f) << w << "x" << h;
  }
}

TEST(Resize, BoxEqualsResizeThenCrop) {
  // Resampling a box == resizing the whole image and cropping (same filter
  // centres), which the eval plan relies on to decode only the crop.
  const qt::Image src = make_image(120, 90, 2);
  const qt::Image whole = qt::resize_box(src.view(), {0, 0, 120, 90}, 60, 45);
  const qt::Image box = qt::resize_box(src.view(), {20, 10, 100, 70}, 40, 30);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(box.pixels[(y * 40 + x) * 3 + c], whole.pixels[((y + 5) * 60 + x + 10) * 3 + c]);
}

TEST(Resize, ConstantImageStaysConstantAndCopyIsExact) {
  qt::Image src(50, 40, 1);
  std::fill(src.pixels.begin(), src.pixels.end(), 77);
  const qt::Image out = qt::resize_box(src.view(), {3.3, 1.7, 47.1, 39.2}, 11, 7);
  for (uint8_t v : out.pixels) ASSERT_EQ(v, 77);
  const qt::Image g = make_image(30, 20, 3);
  const qt::Image copy = qt::resize_box(g.view(), {5, 4, 25, 14}, 20, 10);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 60; ++x) ASSERT_EQ(copy.pixels[y * 60 + x], g.pixels[(y + 4) * 90 + 15 + x]);
}

TEST(Transforms, RandomResizedCropFollowsTorchvision) {
  std::mt19937_64 rng(5);
  const std::vector<double> scale{0.08, 1.0}, ratio{3.0 / 4.0, 4.0 / 3.0};
  double mean_area = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const qt::Box b = qt::random_resized_crop_box(500, 375, scale, ratio, rng);
    ASSERT_GE(b.x0, 0);
    ASSERT_GE(b.y0, 0);
    ASSERT_LE(b.x1, 500);
    ASSERT_LE(b.y1, 375);
    ASSERT_EQ(b.x0, std::floor(b.x0));
    const double area = b.width() * b.height() / (500.0 * 375.0);
    const double aspect = b.width() / b.height();
    EXPECT_GE(area, 0.07);
    EXPECT_LE(area, 1.01);
    // Rounding of w and h may push the aspect slightly outside the range.
    EXPECT_GE(aspect, 0.70);
    EXPECT_LE(aspect, 1.40);
    mean_area += area / n;
  }
  // Area ~ U(0.08, 1) clipped by rejections of over-wide crops: mean about 0.5.
  EXPECT_GT(mean_area, 0.4);
  EXPECT_LT(mean_area, 0.6);
  // Fallback (no attempt fits): a very thin image gets the centre crop at ratio 3/4 limit.
  std::mt19937_64 r2(1);
  const qt::Box f = qt::random_resized_crop_box(10, 1000, {0.99, 1.0}, ratio, r2);
  EXPECT_EQ(f.width(), 10);
  EXPECT_EQ(f.height(), 13);  // round(10 / 0.75)
  EXPECT_EQ(f.y0, (1000 - 13) / 2);
}

TEST(Transforms, EvalPlanIsResize256CenterCrop224) {
  qt::TransformOptions o;  // ImageNet defaults
  qt::Transform t(o, /*train=*/false, 3);
  std::mt19937_64 rng(0);
  const qt::Plan p = t.plan(500, 375, rng);
  // Resize: 375 -> 256, 500 -> int(256 * 500 / 375) = 341; crop left round(58.5) = 58 (half-even), top 16.
  const double s = 375.0 / 256.0;
  EXPECT_NEAR(p.box.x0, 58 * (500.0 / 341.0), 1e-9);
  EXPECT_NEAR(p.box.y0, 16 * s, 1e-9);
  EXPECT_NEAR(p.box.x1, (58 + 224) * (500.0 / 341.0), 1e-9);
  EXPECT_EQ(p.out_w, 224);
  EXPECT_EQ(p.out_h, 224);
  EXPECT_FALSE(p.flip);
  EXPECT_EQ(t.output_shape(500, 375), (std::vector<int64_t>{3, 224, 224}));
}

TEST(Transforms, ReflectPadRandomCropFlipAndNormalize) {
  // 4x3 grey image with values 10 * (y * 4 + x).
  qt::Image img(4, 3, 1);
  for (int i = 0; i < 12; ++i) img.pixels[i] = static_cast<uint8_t>(10 * i);
  qt::TransformOptions o;
  o.size = 4;
  o.random_resized_crop = false;
  o.resize = 0;
  o.pad = 2;
  o.mean = {0.5};
  o.stddev = {0.25};
  qt::Transform t(o, /*train=*/true, 1);
  qt::Plan p;
  p.box = {0, 0, 4, 3};
  p.out_w = 4;
  p.out_h = 3;
  p.pad = 2;
  p.crop_x = 0;
  p.crop_y = 0;
  p.crop_w = 4;
  p.crop_h = 4;
  const auto out = t.apply(img.view(), p);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 4}));
  // numpy.pad(reflect) rows -2,-1,0,1 -> 2,1,0,1; cols -2,-1,0,1 -> 2,1,0,1.
  const int rows[4] = {2, 1, 0, 1}, cols[4] = {2, 1, 0, 1};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      const double v = 10.0 * (rows[y] * 4 + cols[x]);
      EXPECT_NEAR(out[0][y][x].item<float>(), (v / 255.0 - 0.5) / 0.25, 1e-5);
    }
  p.flip = true;
  const auto flipped = t.apply(img.view(), p);
  EXPECT_TRUE(torch::equal(flipped, out.flip({2})));
  // Zero padding.
  o.pad_mode = qt::PadMode::zero;
  qt::Transform tz(o, true, 1);
  p.flip = false;
  const auto z = tz.apply(img.view(), p);
  EXPECT_NEAR(z[0][0][0].item<float>(), (0.0 - 0.5) / 0.25, 1e-6);
  EXPECT_NEAR(z[0][2][2].item<float>(), (0.0 - 0.5) / 0.25, 1e-6);  // pixel (0,0) == 0 too
  EXPECT_NEAR(z[0][3][3].item<float>(), (50.0 / 255.0 - 0.5) / 0.25, 1e-6);
}

TEST(Transforms, CifarTrainPlanIsDeterministicPerGenerator) {
  qt::TransformOptions o;
  o.size = 32;
  o.random_resized_crop = false;
  o.resize = 0;
  o.pad = 4;
  qt::Transform t(o, true, 3);
  const qt::Image img = make_image(32, 32, 9);
  std::mt19937_64 a(11), b(11);
  EXPECT_TRUE(torch::equal(t(img.view(), a), t(img.view(), b)));
  int flips = 0, moved = 0;
  for (int i = 0; i < 400; ++i) {
    std::mt19937_64 r(i);
    const qt::Plan p = t.plan(32, 32, r);
    EXPECT_GE(p.crop_x, 0);
    EXPECT_LE(p.crop_x, 8);
    flips += p.flip;
    moved += p.crop_x != 4 || p.crop_y != 4;
  }
  EXPECT_GT(flips, 150);
  EXPECT_LT(flips, 250);
  EXPECT_GT(moved, 300);
}

TEST(Transforms, BadOptionsAreConfigErrors) {
  qt::TransformOptions o;
  o.mean = {0.1, 0.2};
  EXPECT_THROW(qt::Transform(o, true, 3), qsdk::Error);
  o.mean = {0.5};
  o.scale = {0.9, 0.1};
  EXPECT_THROW(qt::Transform(o, true, 3), qsdk::Error);
  o.scale = {0.08, 1.0};
  o.stddev = {0.0};
  EXPECT_THROW(qt::Transform(o, true, 3), qsdk::Error);
}

TEST(Decode, JpegRegionMatchesFullDecode) {
  const int w = 301, h = 203;
  const auto rgb = qtool_samples::smooth_rgb(w, h, 4);
  for (const bool progressive : {false, true})
    for (const bool grey : {false, true}) {
      const auto jpeg = qtool_samples::encode_jpeg(rgb, w, h, 92, progressive, grey);
      const qt::Image full = qt::decode_image(jpeg, "mem.jpg");
      ASSERT_EQ(full.width, w);
      ASSERT_EQ(full.height, h);
      ASSERT_EQ(full.channels, 3);
      if (grey) {
        EXPECT_EQ(full.pixels[0], full.pixels[1]);
        EXPECT_EQ(full.pixels[0], full.pixels[2]);
      } else {
        // Lossy, but close to what was encoded.
        double mean = 0;
        for (size_t i = 0; i < rgb.size(); ++i) mean += std::fabs(double(rgb[i]) - double(full.pixels[i]));
        EXPECT_LT(mean / static_cast<double>(rgb.size()), 3.0);
      }
      for (const qt::Box box : {qt::Box{37.5, 21, 237, 180}, qt::Box{0, 0, 120, 90}, qt::Box{200, 150, 301, 203}}) {
        const auto region = qt::decode_region(jpeg, "mem.jpg", box, 64, 48, /*dct_scaling=*/false);
        EXPECT_LT(region.image.width * region.image.height, w * h);
        const qt::Image a = qt::resize_box(region.image.view(), region.box, 64, 48);
        const qt::Image b = qt::resize_box(full.view(), box, 64, 48);
        EXPECT_LE(max_abs_diff(a, b), 1.0) << "progressive " << progressive << " grey " << grey;
      }
    }
}

TEST(Decode, DctScalingIsCloseToFullResolution) {
  const int w = 900, h = 700;
  const auto jpeg = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(w, h, 5), w, h, 92);
  const qt::Box box{0, 0, 900, 700};
  const auto scaled = qt::decode_region(jpeg, "mem.jpg", box, 100, 80, /*dct_scaling=*/true);
  EXPECT_LE(scaled.image.width, 113 + 2);  // 1/8 of 900
  const qt::Image a = qt::resize_box(scaled.image.view(), scaled.box, 100, 80);
  const qt::Image full = qt::decode_image(jpeg, "mem.jpg");
  const qt::Image b = qt::resize_box(full.view(), box, 100, 80);
  double mean = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) mean += std::fabs(double(a.pixels[i]) - double(b.pixels[i]));
  mean /= static_cast<double>(a.pixels.size());
  EXPECT_LT(mean, 2.0);
}

TEST(Decode, PngRoundTripsExactly) {
  const auto rgb = qtool_samples::smooth_rgb(33, 17, 6);
  const qt::Image img = qt::decode_image(qtool_samples::encode_png(rgb, 33, 17), "mem.png");
  ASSERT_EQ(img.width, 33);
  ASSERT_EQ(img.height, 17);
  EXPECT_EQ(img.pixels, rgb);
}

TEST(Decode, CorruptFilesAreDataErrorsNamingTheFile) {
  auto jpeg = qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(64, 64, 7), 64, 64);
  // Garbage after the SOI marker: libjpeg's fatal error becomes qsdk::Error.
  std::vector<uint8_t> bad(jpeg.begin(), jpeg.begin() + 3);
  for (int i = 0; i < 200; ++i) bad.push_back(static_cast<uint8_t>(i * 37));
  EXPECT_NE(data_error_place([&] { qt::decode_image(bad, "/x/bad.jpg"); }).find("/x/bad.jpg"), std::string::npos);
  EXPECT_NE(data_error_place([&] { qt::read_image_info(bad, "/x/bad.jpg"); }).find("corrupt JPEG"), std::string::npos);
  // Not an image at all.
  EXPECT_NE(data_error_place([&] {
              qt::decode_image({'h', 'i', '!', '!'}, "/x/t.jpg");
            }).find("/x/t.jpg"),
            std::string::npos);
  // A truncated PNG.
  auto png = qtool_samples::encode_png(qtool_samples::smooth_rgb(64, 64, 8), 64, 64);
  png.resize(png.size() / 2);
  EXPECT_NE(data_error_place([&] { qt::decode_image(png, "/x/half.png"); }).find("/x/half.png"), std::string::npos);
  // A JPEG cut short is a data error by default; DecodeLimits::allow_truncated
  // loads it as the reference (PIL LOAD_TRUNCATED_IMAGES) does.
  jpeg.resize(jpeg.size() * 2 / 3);
  EXPECT_NE(data_error_place([&] { qt::decode_image(jpeg, "/x/cut.jpg"); }).find("/x/cut.jpg | truncated JPEG"),
            std::string::npos);
  qt::DecodeLimits lenient;
  lenient.allow_truncated = true;
  const qt::Image cut = qt::decode_image(jpeg, "/x/cut.jpg", lenient);
  EXPECT_EQ(cut.width, 64);
}

TEST(FileIo, GzipAndErrors) {
  TempDir dir("io");
  std::vector<uint8_t> data(100000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 7) ^ (i >> 5));
  const auto gz = qtool_samples::gzip(data);
  qtool_samples::write_bytes(dir / "a.gz", gz);
  qtool_samples::write_bytes(dir / "raw", data);
  EXPECT_EQ(qt::read_maybe_gzip(dir / "a.gz"), data);
  EXPECT_EQ(qt::read_maybe_gzip(dir / "raw"), data);
  qtool_samples::write_bytes(dir / "cut.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + gz.size() / 2));
  EXPECT_NE(data_error_place([&] { qt::read_maybe_gzip(dir / "cut.gz"); }).find("truncated"), std::string::npos);
  EXPECT_NE(data_error_place([&] { qt::read_file(dir / "missing"); }).find("missing"), std::string::npos);
}
