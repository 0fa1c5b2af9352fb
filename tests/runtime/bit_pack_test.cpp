// The bit packing of integer-model codes (docs/integer-model.md#bit-packing):
// exact bytes for 1 and 3 bits (the documented LSB-first order), round trips
// for every width, refusal of codes that do not fit.
#include "checkpoint/bit_pack.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace {

std::vector<int> bytes_of(const torch::Tensor& t) {
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t[i].item<int>());
  return out;
}

}  // namespace

TEST(ExportBitPack, OneBitIsLsbFirst) {
  // Codes 1,0,1,1,0,0,0,0 | 1: byte 0 = 0b00001101, byte 1 = 0b00000001.
  const torch::Tensor codes = torch::tensor({1, 0, 1, 1, 0, 0, 0, 0, 1}, torch::kLong);
  const torch::Tensor packed = qhost::pack_codes(codes, 1);
  EXPECT_EQ(bytes_of(packed), (std::vector<int>{0x0D, 0x01}));
  EXPECT_TRUE(torch::equal(qhost::unpack_codes(packed, 9, 1), codes));
}

TEST(ExportBitPack, ThreeBitsCrossByteBoundaries) {
  // 1 -> bits 0-2, 2 -> bits 3-5, 3 -> bits 6-8 (two low bits end byte 0),
  // 4 -> bits 9-11, 5 -> bits 12-14: bytes 0xD1, 0x58.
  const torch::Tensor codes = torch::tensor({1, 2, 3, 4, 5}, torch::kLong);
  const torch::Tensor packed = qhost::pack_codes(codes, 3);
  EXPECT_EQ(bytes_of(packed), (std::vector<int>{0xD1, 0x58}));
  EXPECT_TRUE(torch::equal(qhost::unpack_codes(packed, 5, 3), codes));
}

TEST(ExportBitPack, RoundTripEveryWidth) {
  torch::manual_seed(3);
  for (int64_t bits = 1; bits <= qhost::kMaxPackedBits; ++bits) {
    const int64_t n = 1000 + bits;  // counts that leave a partial last byte
    const torch::Tensor codes = torch::randint(0, int64_t{1} << bits, {n}, torch::kLong);
    const torch::Tensor packed = qhost::pack_codes(codes.to(torch::kInt), bits);
    ASSERT_EQ(packed.numel(), qhost::packed_bytes(n, bits)) << bits;
    EXPECT_TRUE(torch::equal(qhost::unpack_codes(packed, n, bits), codes)) << bits;
  }
}

TEST(ExportBitPack, RefusesCodesThatDoNotFit) {
  EXPECT_THROW(qhost::pack_codes(torch::tensor({0, 4}, torch::kLong), 2), qsdk::Error);
  EXPECT_THROW(qhost::pack_codes(torch::tensor({-1}, torch::kLong), 3), qsdk::Error);
  EXPECT_THROW(qhost::pack_codes(torch::tensor({0}, torch::kLong), 17), qsdk::Error);
  // A packed buffer one byte short is refused, not read past its end.
  EXPECT_THROW(qhost::unpack_codes(torch::zeros({1}, torch::kByte), 9, 1), qsdk::Error);
}
