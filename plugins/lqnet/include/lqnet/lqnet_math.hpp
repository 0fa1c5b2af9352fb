// lqnet/lqnet_math.hpp - the LQ-Net level assignment (docs/methods.md#lq-net-forward,
// docs/methods.md#lq-net-backward) as autograd functions. The basis refit (QEM) is
// module state and lives in src/lqnet_quantizer.cpp.
//
//   * qplug_lqnet::lq_assign            fused: src/lqnet_kernels.cpp (float32 contiguous CPU),
//                                       else the composed version;
//   * qplug_lqnet::composed::lq_assign  the same math with ATen operators
//                                       (src/lqnet_composed.cpp), the reference.
// qplug_quant_common::set_use_fused_kernels(false) selects the composed version.
#pragma once

#include <quant_common/kernels.hpp>

#include <vector>

namespace qplug_lqnet {

/// LQ-Net level assignment. `levels` [L, G] sorted ascending per group, `thresholds`
/// [L-1, G]; the output is levels[i+1] for the largest i with x > thresholds[i]
/// (levels[0] if none). Returns {y, index (int64, sorted level index)}. Backward:
/// identity, or zero where x >= the group's largest level when `clip_top`.
std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const qplug_quant_common::GroupLayout& layout, bool clip_top);

namespace composed {
/// ATen-composed reference of qplug_lqnet::lq_assign.
std::vector<at::Tensor> lq_assign(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                  const qplug_quant_common::GroupLayout& layout, bool clip_top);
}  // namespace composed

}  // namespace qplug_lqnet
