// pact/pact_math.hpp - the PACT math (docs/methods.md#pact) as autograd functions.
//
//   * qplug_pact::pact_activation            fused: src/pact_kernels.cpp (float32 contiguous CPU),
//                                            cuda/pact_kernels.cu (float32 CUDA, when built with
//                                            CUDA), else the composed version;
//   * qplug_pact::composed::pact_activation  the same math with ATen operators
//                                            (src/pact_composed.cpp), the reference.
// PACT's weights use the DoReFa tanh path, qplug_quant_common::dorefa_weight (quant_common/kernels.hpp).
// qplug_quant_common::set_use_fused_kernels(false) selects the composed version.
#pragma once

#include <quant_common/kernels.hpp>

namespace qplug_pact {

/// PACT activation with learnable clip `alpha` (shape [1], used raw).
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);

namespace composed {
/// ATen-composed reference of qplug_pact::pact_activation.
at::Tensor pact_activation(const at::Tensor& x, const at::Tensor& alpha, int64_t n);
}  // namespace composed

}  // namespace qplug_pact
