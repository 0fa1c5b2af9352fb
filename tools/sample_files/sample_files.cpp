// sample_files.cpp - see sample_files.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "sample_files.hpp"

#include <png.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace qtool_samples {
namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("qdata-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& bytes) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::vector<uint8_t> out(deflateBound(&zs, bytes.size()) + 64);
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::vector<uint8_t> idx_bytes(const std::vector<int64_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>((d >> s) & 0xFF));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> smooth_rgb(int width, int height, uint64_t seed) {
  // A sum of a few random low-frequency waves per channel: natural-ish
  // content that compresses like a photo, not like noise.
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<uint8_t> out(static_cast<size_t>(width) * height * 3);
  for (int c = 0; c < 3; ++c) {
    double fx[4], fy[4], ph[4], amp[4];
    for (int k = 0; k < 4; ++k) {
      fx[k] = u(g) * 12.0 / width;
      fy[k] = u(g) * 12.0 / height;
      ph[k] = u(g) * 6.283;
      amp[k] = 20 + 30 * u(g);
    }
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        double v = 128;
        for (int k = 0; k < 4; ++k) v += amp[k] * std::sin(6.283 * (fx[k] * x + fy[k] * y) + ph[k]);
        out[(static_cast<size_t>(y) * width + x) * 3 + c] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
  }
  return out;
}

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& rgb, int width, int height, int quality, bool progressive,
                                 bool grey) {
  tjhandle h = tjInitCompress();
  if (!h) throw std::runtime_error("tjInitCompress failed");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int flags = TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0);
  const int rc = tjCompress2(h, rgb.data(), width, 0, height, TJPF_RGB, &buf, &size, grey ? TJSAMP_GRAY : TJSAMP_420,
                             quality, flags);
  std::string err = rc != 0 ? tjGetErrorStr2(h) : "";
  tjDestroy(h);
  if (rc != 0) throw std::runtime_error("tjCompress2: " + err);
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  return out;
}

std::vector<uint8_t> encode_png(const std::vector<uint8_t>& rgb, int width, int height) {
  png_image img;
  std::memset(&img, 0, sizeof(img));
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, nullptr, &size, 0, rgb.data(), 0, nullptr))
    throw std::runtime_error(std::string("png size: ") + img.message);
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&img, out.data(), &size, 0, rgb.data(), 0, nullptr))
    throw std::runtime_error(std::string("png write: ") + img.message);
  out.resize(size);
  return out;
}

}  // namespace qtool_samples
