// bit_pack.hpp - the bit packing of an integer model's weight codes
// (docs/integer-model.md#bit-packing): element i of the row-major code tensor
// takes bits [i*bits, (i+1)*bits) of a little-endian bit stream, bit j of the
// stream being bit (j % 8) (least significant first) of byte j / 8.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace qhost {

/// Widest packed code: 16 bits covers every int8/int32 code range qhost's
/// quantizers produce at the bit widths they accept.
constexpr int64_t kMaxPackedBits = 16;

/// Bytes that `count` codes of `bits` bits occupy: ceil(count * bits / 8).
int64_t packed_bytes(int64_t count, int64_t bits);

/// Packs `codes` (any integer dtype, every value in [0, 2^bits)) into a uint8
/// tensor of packed_bytes(numel, bits) bytes; the unused high bits of the last
/// byte are 0. Throws qsdk::Error(runtime) for a value out of range.
torch::Tensor pack_codes(const torch::Tensor& codes, int64_t bits);

/// Unpacks `count` codes of `bits` bits from `packed` (uint8, exactly
/// packed_bytes(count, bits) bytes, checked by the caller) as int64.
torch::Tensor unpack_codes(const torch::Tensor& packed, int64_t count, int64_t bits);

}  // namespace qhost
