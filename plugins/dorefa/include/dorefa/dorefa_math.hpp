// dorefa/dorefa_math.hpp - the DoReFa math (docs/methods.md#dorefa) as autograd functions.
//
//   * qplug_dorefa::dorefa_activation, dorefa_binarize   fused: src/dorefa_kernels.cpp (float32
//       contiguous CPU), cuda/dorefa_kernels.cu (activation, float32 CUDA, when built with CUDA),
//       else the composed version;
//   * qplug_dorefa::composed::...                        the same math with ATen operators
//       (src/dorefa_composed.cpp), the reference for tests and benchmarks.
// The tanh weight path, qplug_quant_common::dorefa_weight, lives in quant_common
// (quant_common/kernels.hpp) because PACT's weights use it too.
// qplug_quant_common::set_use_fused_kernels(false) selects the composed versions.
#pragma once

#include <quant_common/kernels.hpp>

namespace qplug_dorefa {

/// DoReFa activation: round(clamp(x, 0, c) * n/c) / (n/c), straight-through on [0, c].
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
/// DoReFa weight binarisation: mean|w| * (w < 0 ? -1 : 1), identity gradient.
at::Tensor dorefa_binarize(const at::Tensor& w);
using qplug_quant_common::dorefa_weight;

namespace composed {
/// ATen-composed reference of qplug_dorefa::dorefa_activation.
at::Tensor dorefa_activation(const at::Tensor& x, double clip, int64_t n);
/// ATen-composed reference of qplug_dorefa::dorefa_binarize.
at::Tensor dorefa_binarize(const at::Tensor& w);
using qplug_quant_common::composed::dorefa_weight;
}  // namespace composed

}  // namespace qplug_dorefa
