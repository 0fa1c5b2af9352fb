// Bit packing of integer-model codes (docs/integer-model.md#bit-packing).
// Least significant bit first, so a reader can unpack with shifts and a mask
// on a little-endian word without reversing bits, for every width 1..16.
#include "checkpoint/bit_pack.hpp"

#include <qsdk/error.hpp>

namespace qhost {

int64_t packed_bytes(int64_t count, int64_t bits) { return (count * bits + 7) / 8; }

torch::Tensor pack_codes(const torch::Tensor& codes, int64_t bits) {
  if (bits < 1 || bits > kMaxPackedBits)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "pack_codes", "bits " + std::to_string(bits) + " outside [1, 16]");
  const torch::Tensor c = codes.reshape({-1}).to(torch::kLong).contiguous();
  const int64_t n = c.numel();
  torch::Tensor out = torch::zeros({packed_bytes(n, bits)}, torch::kByte);
  const int64_t* src = c.data_ptr<int64_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t limit = int64_t{1} << bits;
  uint64_t bit = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = src[i];
    if (v < 0 || v >= limit)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, "pack_codes",
                        "code " + std::to_string(v) + " does not fit " + std::to_string(bits) + " bits");
    // A code spans at most three bytes (16 bits starting at bit offset 7).
    for (int64_t b = 0; b < bits; ++b, ++bit)
      if ((v >> b) & 1) dst[bit >> 3] |= static_cast<uint8_t>(1u << (bit & 7));
  }
  return out;
}

torch::Tensor unpack_codes(const torch::Tensor& packed, int64_t count, int64_t bits) {
  if (bits < 1 || bits > kMaxPackedBits || packed.scalar_type() != torch::kByte ||
      packed.numel() != packed_bytes(count, bits))
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "unpack_codes", "packed size does not match count and bits");
  const torch::Tensor p = packed.contiguous();
  const uint8_t* src = p.data_ptr<uint8_t>();
  torch::Tensor out = torch::empty({count}, torch::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  uint64_t bit = 0;
  for (int64_t i = 0; i < count; ++i) {
    int64_t v = 0;
    for (int64_t b = 0; b < bits; ++b, ++bit) v |= static_cast<int64_t>((src[bit >> 3] >> (bit & 7)) & 1) << b;
    dst[i] = v;
  }
  return out;
}

}  // namespace qhost
