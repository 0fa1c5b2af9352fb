// quant_common/kernels.hpp - the pieces of quantizer math that several methods share.
//
// Each method's own math lives in its plugin (plugins/<method>/include/<method>/<method>_math.hpp):
// a fused function (one custom autograd Function, one pass over the tensor per direction for
// float32 contiguous CPU tensors, CUDA kernels for LSQ/DoReFa/PACT when built with CUDA) and,
// in `<namespace>::composed::`, the same math written with ATen operators (the reference for
// tests and benchmarks). This header holds what those share: the group layout, the
// straight-through helpers, the fused/composed switch, and the DoReFa tanh weight path
// (used by both the dorefa and the pact plugins).
// Rounding is round-half-to-even (nearbyint), clamp masks are inclusive (docs/methods.md#numerical-primitives).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace qplug_quant_common {

/// How elements map to parameter groups: element i (row-major) belongs to group
/// ((i / inner) % period) / per_group.
struct GroupLayout {
  int64_t inner = 1;      ///< elements sharing one index of the grouped axis
  int64_t period = 1;     ///< extent of the grouped axis
  int64_t per_group = 1;  ///< consecutive indices of that axis per group
  int64_t groups = 1;     ///< number of groups

  /// Group of flat element `i`.
  int64_t group_of(int64_t i) const { return ((i / inner) % period) / per_group; }
  /// One group for everything.
  static GroupLayout whole(int64_t numel);
  /// `groups` contiguous blocks of channels (dim 1) of an N x C x ... tensor.
  static GroupLayout channel_blocks(const at::Tensor& x, int64_t groups);
  /// `groups` contiguous blocks of the flattened tensor.
  static GroupLayout flat_blocks(int64_t numel, int64_t groups);
  /// Shape {outer, groups, block} that views a tensor so that dim 1 is the group.
  std::vector<int64_t> grouped_view(int64_t numel) const;
  /// {inner, period, per_group, groups}: the form an autograd Function can take
  /// as an argument and keep in its saved data.
  std::vector<int64_t> to_vector() const { return {inner, period, per_group, groups}; }
  /// Inverse of to_vector().
  static GroupLayout from_vector(const std::vector<int64_t>& v) {
    GroupLayout l;
    l.inner = v[0];
    l.period = v[1];
    l.per_group = v[2];
    l.groups = v[3];
    return l;
  }
};

/// DoReFa tanh weight path: 2*qfn(tanh(w) / (2 max|tanh w|) + 0.5) - 1, gradient through the max
/// (docs/methods.md#dorefa). Shared: DoReFa weights and PACT weights both use it.
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);

/// Returns `y` in forward; backward is the upstream gradient times `mask`
/// (identity when `mask` is undefined). Used where the value is computed
/// without gradient and the reference defines a straight-through backward.
at::Tensor masked_ste(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask);

namespace composed {
/// ATen-composed reference of qplug_quant_common::dorefa_weight.
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);
/// Straight-through round (round in forward, identity backward).
at::Tensor round_ste(const at::Tensor& v);
/// Per-group parameter `p` (one value per group) viewed to broadcast against
/// x.reshape(l.grouped_view(x.numel())).
at::Tensor group_param(const at::Tensor& p, const GroupLayout& l);
}  // namespace composed

/// Selects the fused kernels (default) or the composed reference process-wide;
/// used by tests and benchmarks to compare both through the quantizer modules.
void set_use_fused_kernels(bool fused);
/// Whether the fused kernels are selected.
bool use_fused_kernels();

}  // namespace qplug_quant_common
