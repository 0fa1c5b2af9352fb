// xnor/xnor_math.hpp - the XNOR binarisation math (docs/methods.md#xnor-binarisation) as
// autograd functions.
//
//   * qplug_xnor::xnor_binarize            fused: src/xnor_kernels.cpp (float32 contiguous CPU),
//                                          else the composed version;
//   * qplug_xnor::composed::xnor_binarize  the same math with ATen operators
//                                          (src/xnor_composed.cpp), the reference.
// qplug_quant_common::set_use_fused_kernels(false) selects the composed version.
#pragma once

#include <quant_common/kernels.hpp>

namespace qplug_xnor {

/// Surrogate gradient of a sign function.
enum class SignGrad {
  identity,  ///< gradient passes unchanged
  ste,       ///< passes where -1 < x < 1
  triangle,  ///< times 2 - 2|x| where |x| < 1 (Bi-Real ApproxSign)
};
/// XNOR binarisation: scale_g * (x < 0 ? -1 : 1) with an optional constant per-group
/// scale (undefined = 1); backward is the upstream gradient times the SignGrad mask.
at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad,
                         const qplug_quant_common::GroupLayout& layout);

namespace composed {
/// ATen-composed reference of qplug_xnor::xnor_binarize.
at::Tensor xnor_binarize(const at::Tensor& x, const at::Tensor& group_scale, SignGrad grad,
                         const qplug_quant_common::GroupLayout& layout);
}  // namespace composed

}  // namespace qplug_xnor
