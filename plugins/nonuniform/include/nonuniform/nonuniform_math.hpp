// nonuniform/nonuniform_math.hpp - the non-uniform (FATNN-style) math
// (docs/methods.md#non-uniform-fatnn) as autograd functions.
//
//   * qplug_nonuniform::nonuniform_quantize            fused: src/nonuniform_kernels.cpp (float32
//                                                      contiguous CPU), else the composed version;
//   * qplug_nonuniform::composed::nonuniform_quantize  the same math with ATen operators
//                                                      (src/nonuniform_composed.cpp), the reference.
// qplug_quant_common::set_use_fused_kernels(false) selects the composed version.
#pragma once

#include <quant_common/kernels.hpp>

#include <vector>

namespace qplug_nonuniform {

/// Non-uniform (FATNN-style) quantization to integer levels with per-group slopes.
/// Half range: 1..3 slopes (2..4 levels); full range: exactly 2 slopes (3 levels, {-1,0,1}).
at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const qplug_quant_common::GroupLayout& layout);

namespace composed {
/// ATen-composed reference of qplug_nonuniform::nonuniform_quantize.
at::Tensor nonuniform_quantize(const at::Tensor& x, const std::vector<at::Tensor>& alphas, bool half_range,
                               const qplug_quant_common::GroupLayout& layout);
}  // namespace composed

}  // namespace qplug_nonuniform
