// quant_common/kernels.hpp - the quantizer math as autograd functions.
//
// Every function exists twice with the same signature and semantics:
//   * qplug_quant_common::<name>            fused: one custom autograd Function, one pass over
//                                           the tensor per direction (float32 contiguous CPU with
//                                           at::parallel_for; CUDA kernels for LSQ/DoReFa/PACT when
//                                           built with CUDA), falling back to the composed version
//                                           for other dtypes/devices;
//   * qplug_quant_common::composed::<name>  the same math written with ATen operators (the
//                                           reference for tests and benchmarks).
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
};

/// LSQ options (docs/methods.md#lsq).
struct LsqArgs {
  double n = 3.0;            ///< level_num - 1 (float)
  bool half_range = true;    ///< [0, s] or [-s, s]
  double grad_factor = 1.0;  ///< clip-gradient factor (the int()==1 rule is applied inside)
  bool ste_scale = false;    ///< grad_type STE-scale (ClampWithScale)
  GroupLayout layout;        ///< groups of `clip`
};
/// LSQ fake quantization of `x` with per-group clip `clip` (|clip| is the step range).
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);

/// DoReFa activation: round(clamp(x, 0, c) * n/c) / (n/c), straight-through on [0, c].
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
/// DoReFa tanh weight path: 2*qfn(tanh(w) / (2 max|tanh w|) + 0.5) - 1, gradient through the max.
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);
/// DoReFa weight binarisation: mean|w| * (w < 0 ? -1 : 1), identity gradient.
at::Tensor dorefa_binarize(const at::Tensor& w);

/// PACT activation with learnable clip `alpha` (shape [1], used raw).
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);

/// Non-uniform (FATNN-style) quantization to integer levels with per-group slopes.
/// Half range: 1..3 slopes (2..4 levels); full range: exactly 2 slopes (3 levels, {-1,0,1}).
at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const GroupLayout& layout);

/// Surrogate gradient of a sign function.
enum class SignGrad {
  identity,  ///< gradient passes unchanged
  ste,       ///< passes where -1 < x < 1
  triangle,  ///< times 2 - 2|x| where |x| < 1 (Bi-Real ApproxSign)
};
/// XNOR binarisation: scale_g * (x < 0 ? -1 : 1) with an optional constant per-group
/// scale (undefined = 1); backward is the upstream gradient times the SignGrad mask.
at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad,
                         const GroupLayout& layout);

/// LQ-Net level assignment. `levels` [L, G] sorted ascending per group, `thresholds`
/// [L-1, G]; the output is levels[i+1] for the largest i with x > thresholds[i]
/// (levels[0] if none). Returns {y, index (int64, sorted level index)}. Backward:
/// identity, or zero where x >= the group's largest level when `clip_top`.
std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const GroupLayout& layout, bool clip_top);

/// Returns `y` in forward; backward is the upstream gradient times `mask`
/// (identity when `mask` is undefined). Used where the value is computed
/// without gradient and the reference defines a straight-through backward.
at::Tensor masked_ste(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask);

namespace composed {
/// ATen-composed reference of qplug_quant_common::lsq_quantize.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);
/// ATen-composed reference of qplug_quant_common::dorefa_activation.
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
/// ATen-composed reference of qplug_quant_common::dorefa_weight.
at::Tensor dorefa_weight(const at::Tensor& w, double clip, int64_t n);
/// ATen-composed reference of qplug_quant_common::dorefa_binarize.
at::Tensor dorefa_binarize(const at::Tensor& w);
/// ATen-composed reference of qplug_quant_common::pact_activation.
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);
/// ATen-composed reference of qplug_quant_common::nonuniform_quantize.
at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const GroupLayout& layout);
/// ATen-composed reference of qplug_quant_common::xnor_binarize.
at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad,
                         const GroupLayout& layout);
/// ATen-composed reference of qplug_quant_common::lq_assign.
std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const GroupLayout& layout, bool clip_top);
/// Straight-through round (round in forward, identity backward).
at::Tensor round_ste(const at::Tensor& v);
}  // namespace composed

/// Selects the fused kernels (default) or the composed reference process-wide;
/// used by tests and benchmarks to compare both through the quantizer modules.
void set_use_fused_kernels(bool fused);
/// Whether the fused kernels are selected.
bool use_fused_kernels();

}  // namespace qplug_quant_common
