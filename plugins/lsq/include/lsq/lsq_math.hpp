// lsq/lsq_math.hpp - the LSQ math (docs/methods.md#lsq) as autograd functions.
//
//   * qplug_lsq::lsq_quantize            fused: src/lsq_kernels.cpp (float32 contiguous CPU),
//                                        cuda/lsq_kernels.cu (float32 CUDA, when built with CUDA),
//                                        else the composed version;
//   * qplug_lsq::composed::lsq_quantize  the same math with ATen operators (src/lsq_composed.cpp),
//                                        the reference for tests and benchmarks.
// qplug_quant_common::set_use_fused_kernels(false) selects the composed version.
#pragma once

#include <quant_common/kernels.hpp>

namespace qplug_lsq {

/// LSQ options (docs/methods.md#lsq).
struct LsqArgs {
  double n = 3.0;            ///< level_num - 1 (float)
  bool half_range = true;    ///< [0, s] or [-s, s]
  double grad_factor = 1.0;  ///< clip-gradient factor (the int()==1 rule is applied inside)
  bool ste_scale = false;    ///< grad_type STE-scale (ClampWithScale)
  qplug_quant_common::GroupLayout layout;  ///< groups of `clip`
};
/// LSQ fake quantization of `x` with per-group clip `clip` (|clip| is the step range).
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);

namespace composed {
/// ATen-composed reference of qplug_lsq::lsq_quantize.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& clip, const LsqArgs& args);
}  // namespace composed

}  // namespace qplug_lsq
