// qsdk/quantizer.hpp - the quantizer interface (kind `quantizer`).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>
#include <qsdk/roles.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qsdk {

/// Where a quantizer is attached; given to its constructor.
struct QSDK_API QuantizerContext {
  /// Which tensor it quantizes.
  QuantTarget target = QuantTarget::activation;
  /// The reference's shape convention: activation [1, C_in, 1, 1]; conv weight
  /// [C_out, C_in, k, k]; linear weight [1, 1, C_out, C_in]; output [1, C_out, 1, 1].
  std::vector<int64_t> shape;
  /// Module path of the owning layer, e.g. "layer1.0.conv1".
  std::string module_path;
  /// Role of the owning layer (to_string gives "stem", "body", "shortcut", "head").
  LayerRole role = LayerRole::body;
  /// Per-rank batch size (used by element-count gradient scaling).
  int64_t batch_size = 1;
  /// Training input resolution (used by element-count gradient scaling).
  int64_t input_size = 0;
};

/// A fake quantizer: a module whose forward maps a float tensor to its
/// quantized float value, with a straight-through or learned backward.
/// Learned values (clip, slopes) are parameters and state (counters, bases) are
/// buffers, so both land in checkpoints under the quantizer's module path.
class QSDK_API QuantizerImpl : public torch::nn::Module {
 public:
  ~QuantizerImpl() override;
  /// Quantizes `x`. Training vs eval behaviour follows `is_training()`.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// Number of quantization levels (2 for binary, 3 for ternary, 2^bits ...).
  virtual int64_t num_levels() const = 0;
  /// The float values of the levels for the current state, one row per group
  /// (for reports and histograms); empty when levels are data dependent.
  virtual torch::Tensor levels() const { return {}; }
};

/// Optional second base class of a quantizer that may let a convolution pad
/// its input itself. The host looks it up with dynamic_cast before every
/// forward of a layer that pads before quantizing; a quantizer without it is
/// always given the explicitly zero-padded tensor.
class QSDK_API ZeroPaddingAware {
 public:
  virtual ~ZeroPaddingAware();
  /// True when, in the current state and mode, forward(zero_pad(x)) equals
  /// zero_pad(forward(x)) in value and in the gradients of x and of the
  /// quantizer's parameters (up to the order of floating-point sums), e.g. an
  /// activation quantizer that maps 0 to 0 with no gradient there and does not
  /// count elements.
  virtual bool commutes_with_zero_padding() const = 0;
};

}  // namespace qsdk
