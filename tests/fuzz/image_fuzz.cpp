// libFuzzer target: the JPEG / PNG decoders of the image-folder reader (issue
// 11). The input is an image file's bytes: read_image_info and decode_image
// (with a small pixel cap, so the fuzzer explores headers rather than
// spending its time on legitimately large images) must return or throw
// qsdk::Error, never crash, read out of bounds or allocate past the cap.
// Built by tools/fuzz.sh (target `image`); LibTorch-free.
#include "qdata/image_decode.hpp"

#include <qsdk/error.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  qplug_transforms::DecodeLimits limits;
  limits.max_pixels = int64_t{1} << 22;  // 4 Mpixel: 12 MB of RGB at most
  limits.max_scans = 64;
  for (bool truncated_ok : {false, true}) {
    limits.allow_truncated = truncated_ok;
    try {
      const auto info = qplug_transforms::read_image_info(bytes, "fuzz", limits);
      const auto image = qplug_transforms::decode_image(bytes, "fuzz", limits);
      (void)info;
      (void)image;
    } catch (const qsdk::Error&) {
    }
  }
  return 0;
}
