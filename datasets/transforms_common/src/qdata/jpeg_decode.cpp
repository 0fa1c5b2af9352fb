// qdata/jpeg_decode.cpp - see jpeg_decode.hpp.
//
// Uses libjpeg-turbo through its libjpeg API rather than TurboJPEG: TurboJPEG
// 2.x cannot decode a region, while jpeg_crop_scanline / jpeg_skip_scanlines
// let a random-resized crop skip the IDCT and colour conversion of the pixels
// it does not use (DALI's fused decode + crop does the same on GPU), and
// scale_num / scale_denom give the DCT-domain 1/2, 1/4, 1/8 downscale.
// SPDX-License-Identifier: Apache-2.0
#include "qdata/jpeg_decode.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include <jpeglib.h>
// After jpeglib.h: the JWRN_* message codes.
#include <jerror.h>

namespace qplug_transforms {
namespace {

// libjpeg reports fatal errors through error_exit, which must not return:
// we longjmp back to the frame that called setjmp (no C++ objects with
// destructors live in that frame after setjmp) and turn it into an Error.
struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warnings;
  bool hit_eof;   // libjpeg ran out of data (JWRN_JPEG_EOF): the file is truncated
  bool too_big;   // refused by DecodeLimits (not "corrupt")
  int max_scans;  // progressive scans allowed
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are counted; running out of data is remembered (a truncated
// file, refused unless DecodeLimits::allow_truncated). The others (extraneous
// bytes, a bad Huffman code) are tolerated, as PIL tolerates them.
void on_emit(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level >= 0) return;
  err->warnings++;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->hit_eof = true;
}

// TurboJPEG's TJFLAG_LIMITSCANS through the libjpeg API (and its limit):
// the progress monitor runs between the steps that absorb a progressive
// file's scans, so the count is checked as each new scan begins.
void on_progress(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (!cinfo->is_decompressor) return;
  const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->progressive_mode && d->input_scan_number > err->max_scans) {
    std::snprintf(err->message, sizeof(err->message), "progressive JPEG has more than %d scans", err->max_scans);
    err->too_big = true;
    std::longjmp(err->jump, 1);
  }
}

// Whether an end-of-image marker follows the scan data starting at `from`.
// Inside entropy-coded data 0xFF is always followed by 0x00 or a restart
// marker, so FF D9 there is the real EOI; one in an EXIF thumbnail lies
// before the first scan. Searched from the end, where it normally is.
bool has_eoi_after(const unsigned char* data, size_t size, size_t from) {
  for (size_t i = size; i >= from + 2; --i)
    if (data[i - 2] == 0xFF && data[i - 1] == 0xD9) return true;
  return false;
}

void on_output(j_common_ptr) {}

// What the C-level decode produced; owned by the caller so it survives a longjmp.
struct Output {
  int64_t full_width = 0, full_height = 0;
  int64_t scaled_width = 0, scaled_height = 0;
  int64_t x0 = 0, y0 = 0, width = 0, height = 0;  // decoded window in scaled coordinates
  int components = 0;
  int denom = 1;  // DCT scaling: scaled pixel i covers source [i * denom, (i + 1) * denom)
  bool adobe = false;
};

// Request: header only, or the window around `box` (source coordinates).
struct Request {
  DecodeLimits limits;
  bool header_only = false;
  bool has_box = false;
  Box box;
  int64_t out_w = 0, out_h = 0;
  bool dct_scaling = false;
};

// Returns false with err->message set on a libjpeg error. Plain C style: see
// ErrorManager.
// `pixels` (caller-owned, so it survives a longjmp) receives width * height *
// components bytes.
bool decode_c(const unsigned char* data, size_t size, const Request* req, Output* out, ErrorManager* err,
              std::vector<uint8_t>* pixels) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.emit_message = on_emit;
  err->pub.output_message = on_output;
  err->warnings = 0;
  err->hit_eof = false;
  err->too_big = false;
  err->max_scans = req->limits.max_scans;
  jpeg_progress_mgr progress;
  progress.progress_monitor = on_progress;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  out->full_width = cinfo.image_width;
  out->full_height = cinfo.image_height;
  out->adobe = cinfo.saw_Adobe_marker != 0;
  // From the header, before the decoder allocates anything image-sized (a
  // progressive file's coefficient buffer is 2 bytes per sample).
  if (out->full_width * out->full_height > req->limits.max_pixels) {
    err->too_big = true;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  // A region decode never reads the rows below its window, so truncation is
  // judged from the bytes, the same for every crop: jpeg_read_header stopped
  // right after the first SOS header.
  // (Past the end, the memory source feeds a fake EOI from its own buffer.)
  const unsigned char* next = cinfo.src->next_input_byte;
  const bool inside = std::less_equal<const unsigned char*>()(data, next) &&
                      std::less_equal<const unsigned char*>()(next, data + size);
  if (!req->limits.allow_truncated &&
      (!inside || err->hit_eof || !has_eoi_after(data, size, static_cast<size_t>(next - data)))) {
    err->hit_eof = true;
    std::snprintf(err->message, sizeof(err->message), "file is truncated (no end-of-image marker after the scan data)");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (req->header_only) {
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;

  int denom = 1;
  if (req->has_box && req->dct_scaling) {
    for (int d : {8, 4, 2}) {
      if (req->box.width() / d >= static_cast<double>(req->out_w) &&
          req->box.height() / d >= static_cast<double>(req->out_h)) {
        denom = d;
        break;
      }
    }
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(denom);
  out->denom = denom;
  jpeg_start_decompress(&cinfo);
  const int64_t W = cinfo.output_width, H = cinfo.output_height;
  out->scaled_width = W;
  out->scaled_height = H;
  out->components = cinfo.output_components;

  int64_t x0 = 0, x1 = W, y0 = 0, y1 = H;
  if (req->has_box) {
    const double sx = 1.0 / denom, sy = 1.0 / denom;
    // Margin = the resampling filter's reach beyond the box, so decoding a
    // window gives the same pixels as decoding everything.
    const double bw = req->box.width() * sx, bh = req->box.height() * sy;
    const int64_t mx = static_cast<int64_t>(std::ceil(std::max(bw / req->out_w, 1.0))) + 1;
    const int64_t my = static_cast<int64_t>(std::ceil(std::max(bh / req->out_h, 1.0))) + 1;
    x0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(req->box.x0 * sx)) - mx, 0, W - 1);
    x1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(req->box.x1 * sx)) + mx, x0 + 1, W);
    y0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(req->box.y0 * sy)) - my, 0, H - 1);
    y1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(req->box.y1 * sy)) + my, y0 + 1, H);
  }
  if (x0 > 0 || x1 < W) {
    JDIMENSION xoff = static_cast<JDIMENSION>(x0), cw = static_cast<JDIMENSION>(x1 - x0);
    jpeg_crop_scanline(&cinfo, &xoff, &cw);  // widens to iMCU boundaries
    x0 = xoff;
    x1 = static_cast<int64_t>(xoff) + cw;
  }
  const int64_t width = cinfo.output_width;  // after cropping
  out->x0 = x0;
  out->y0 = y0;
  out->width = width;
  out->height = y1 - y0;
  const size_t row_bytes = static_cast<size_t>(width) * static_cast<size_t>(out->components);
  bool allocated = false;
  try {
    pixels->resize(row_bytes * static_cast<size_t>(out->height));
    allocated = true;
  } catch (const std::bad_alloc&) {
  }
  if (!allocated) {
    std::snprintf(err->message, sizeof(err->message), "out of memory");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  while (static_cast<int64_t>(cinfo.output_scanline) < y1) {
    JSAMPROW row = pixels->data() + row_bytes * static_cast<size_t>(cinfo.output_scanline - y0);
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
  }
  // Not finishing: the rows below the window are never needed.
  jpeg_destroy_decompress(&cinfo);
  return true;
}

[[noreturn]] void corrupt(const std::string& path, const char* message) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path, std::string("corrupt JPEG: ") + message,
                    "re-create the file or remove it from the dataset folder");
}

[[noreturn]] void truncated(const std::string& path) {
  throw qsdk::Error(qsdk::ErrorCategory::data, path,
                    "truncated JPEG: the data ends before the end-of-image marker (a partly copied file?)",
                    "copy the file again or remove it; allow_truncated_images = true decodes it with the missing "
                    "part grey, as the reference does");
}

// Turns a failed decode_c into the right error.
[[noreturn]] void fail(const std::string& path, const Output& out, const ErrorManager& err,
                       const DecodeLimits& limits) {
  if (err.too_big && out.full_width * out.full_height > limits.max_pixels)
    check_image_size(out.full_width, out.full_height, path, limits);  // throws
  if (err.too_big)
    throw qsdk::Error(qsdk::ErrorCategory::data, path, std::string("refused JPEG: ") + err.message,
                      "re-encode the file (e.g. as baseline JPEG) or remove it from the dataset folder");
  if (err.hit_eof) truncated(path);
  corrupt(path, err.message);
}

}  // namespace

ImageInfo jpeg_info(const std::vector<uint8_t>& bytes, const std::string& path, const DecodeLimits& limits) {
  ErrorManager err;
  Request req;
  req.limits = limits;
  req.header_only = true;
  Output out;
  if (!decode_c(bytes.data(), bytes.size(), &req, &out, &err, nullptr)) fail(path, out, err, limits);
  return {out.full_width, out.full_height};
}

DecodedRegion jpeg_decode(const std::vector<uint8_t>& bytes, const std::string& path, const Box* box, int64_t out_w,
                          int64_t out_h, bool dct_scaling, const DecodeLimits& limits) {
  ErrorManager err;
  Request req;
  req.limits = limits;
  if (box) {
    req.has_box = true;
    req.box = *box;
    req.out_w = std::max<int64_t>(out_w, 1);
    req.out_h = std::max<int64_t>(out_h, 1);
    req.dct_scaling = dct_scaling;
  }
  Output out;
  std::vector<uint8_t> pixels;
  if (!decode_c(bytes.data(), bytes.size(), &req, &out, &err, &pixels)) fail(path, out, err, limits);
  // Ran out of data inside the window despite an EOI marker (a corrupt
  // length field or scan): as truncated.
  if (err.hit_eof && !limits.allow_truncated) truncated(path);

  DecodedRegion result;
  const int64_t n = out.width * out.height;
  if (out.components == 3) {
    result.image.width = out.width;
    result.image.height = out.height;
    result.image.channels = 3;
    result.image.pixels = std::move(pixels);
  } else if (out.components == 4) {
    // CMYK: Adobe files store inverted values, so the product is already RGB.
    result.image = Image(out.width, out.height, 3);
    uint8_t* d = result.image.pixels.data();
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* s = pixels.data() + 4 * i;
      int c = s[0], m = s[1], y = s[2], k = s[3];
      if (!out.adobe) {
        c = 255 - c;
        m = 255 - m;
        y = 255 - y;
        k = 255 - k;
      }
      d[3 * i] = static_cast<uint8_t>(c * k / 255);
      d[3 * i + 1] = static_cast<uint8_t>(m * k / 255);
      d[3 * i + 2] = static_cast<uint8_t>(y * k / 255);
    }
  } else {
    corrupt(path, "unsupported number of colour components");
  }
  if (box) {
    // Not scaled_width / full_width: the last block row/column is partial.
    const double sx = 1.0 / out.denom, sy = 1.0 / out.denom;
    result.box = {box->x0 * sx - out.x0, box->y0 * sy - out.y0, box->x1 * sx - out.x0, box->y1 * sy - out.y0};
  } else {
    result.box = {0, 0, static_cast<double>(out.width), static_cast<double>(out.height)};
  }
  return result;
}

}  // namespace qplug_transforms
