// qsdk/exportable.hpp - optional interface of a quantizer that can be deployed
// with standard integer operators (`qhost export`, ONNX QuantizeLinear /
// DequantizeLinear).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <torch/types.h>

#include <cstdint>

namespace qsdk {

/// The integer form of a quantized weight: the quantizer's output equals
/// `codes * scale` (zero point 0), the scale broadcast along `axis`.
struct QSDK_API WeightExport {
  /// Integer codes, the shape of the weight given to Exportable::export_weight:
  /// int8 (torch::kChar), or int32 (torch::kInt) when they do not fit int8.
  torch::Tensor codes;
  /// float32 step: one element (per tensor) or one per index of `axis` (per channel).
  torch::Tensor scale;
  /// The axis a per-channel scale runs along; ignored for one element.
  int64_t axis = 0;
};

/// The affine integer form of an activation (or output) quantizer at inference:
/// y = (clamp(round_half_even(x / scale) + zero_point, qmin, qmax) - zero_point) * scale,
/// i.e. a clip to [(qmin - zero_point) scale, (qmax - zero_point) scale], then
/// QuantizeLinear and DequantizeLinear with `scale` and `zero_point`.
struct QSDK_API ActivationExport {
  /// float32 step: one element, or one per channel (axis 1 of an NCHW tensor).
  torch::Tensor scale;
  /// Integer zero point (the code of the value 0), qmin <= zero_point <= qmax.
  int64_t zero_point = 0;
  /// Smallest code (the method's lowest level).
  int64_t qmin = 0;
  /// Largest code (the method's highest level).
  int64_t qmax = 255;
  /// Codes stored as int8 (a signed range); uint8 otherwise. The range
  /// [qmin, qmax] and the zero point lie inside the chosen type.
  bool is_signed = false;
};

/// Optional second base class of a quantizer that says how it is deployed with
/// standard integer operators (the host finds it with dynamic_cast). Both calls
/// describe what `forward` computes in eval mode in the current state (learned
/// clips, counters, level_num), exactly up to float rounding; they change no
/// state. A quantizer, target or state that has no such exact form throws
/// qsdk::Error (category config) saying why: the host adds the layer and the
/// component, and never approximates. A quantizer without this base class is
/// refused by `qhost export`.
class QSDK_API Exportable {
 public:
  virtual ~Exportable();
  /// Weight quantizer: the integer form of forward(w) for the weight `w`
  /// (already through the tricks' weight transforms, and in the shape forward
  /// sees: [C_out, C_in, k, k] for a conv, [1, 1, out, in] for a linear layer).
  /// Weight standardisation and per-group factors are applied here.
  virtual WeightExport export_weight(const torch::Tensor& w) const = 0;
  /// Activation or output quantizer: its affine integer form.
  virtual ActivationExport export_activation() const = 0;
};

}  // namespace qsdk
