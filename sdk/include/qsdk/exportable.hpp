// qsdk/exportable.hpp - optional interfaces of a quantizer that can be deployed
// with standard operators (`qhost export`): Exportable for uniform levels (ONNX
// QuantizeLinear / DequantizeLinear), LevelExportable for learned, unequally
// spaced levels (a level table gathered by codes, comparisons with thresholds).
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

/// The level-table form of a quantized weight whose levels are not equally
/// spaced (LQ-Net's basis sums): forward(w) equals `levels[codes]`, exactly,
/// with the table of the weight's index along `axis` (ONNX: Gather).
struct QSDK_API LevelWeightExport {
  /// Level indices, uint8 (torch::kByte), the shape of the weight given to
  /// LevelExportable::export_weight_levels; 0 <= code < L.
  torch::Tensor codes;
  /// float32 level values: [L] (one table) or [shape[axis], L] (one per index of `axis`).
  torch::Tensor levels;
  /// The axis the tables run along; ignored for one table.
  int64_t axis = 0;
};

/// The threshold form of an activation quantizer with learned thresholds or
/// levels: y = levels[k], k = the largest i + 1 for which x passes
/// thresholds[i], 0 when it passes none. "Passes" is `x > t` (a value at a
/// threshold stays below, NaN too) or, with `upper_at_ties`, `!(x < t)` (a
/// value at a threshold goes above, NaN too): the quantizer's own comparison,
/// so the form is exact at the thresholds. The thresholds need not be sorted.
struct QSDK_API LevelActivationExport {
  /// float32 [L - 1] (one set) or [C, L - 1] (one row per channel, axis 1 of an NCHW tensor).
  torch::Tensor thresholds;
  /// float32 [L] or [C, L], the same layout.
  torch::Tensor levels;
  /// Ties (and NaN) go to the upper level: the quantizer compares `x < t`, not `x > t`.
  bool upper_at_ties = false;
};

/// Optional companion of Exportable for quantizers whose levels or thresholds
/// are learned and unequally spaced, so no QuantizeLinear scale gives them
/// (LQ-Net, the non-uniform quantizer, XNOR activations). The same contract as
/// Exportable: eval-mode forward in the current state, exactly (no float
/// rounding either: the levels are forward's own values), no state change, and
/// qsdk::Error (category config) for a state without such a form. A separate
/// class rather than new virtual members of Exportable, so the vtable of
/// Exportable (and every plugin built against it) stays as it is.
class QSDK_API LevelExportable {
 public:
  virtual ~LevelExportable();
  /// True when this quantizer (its target and options) is deployed through the
  /// calls below; false when it uses Exportable's affine form (e.g. the
  /// non-uniform quantizer's ternary weights, which are codes -1, 0, 1 times a step).
  virtual bool uses_levels() const = 0;
  /// Weight quantizer: the level-table form of forward(w), `w` as for
  /// Exportable::export_weight.
  virtual LevelWeightExport export_weight_levels(const torch::Tensor& w) const = 0;
  /// Activation or output quantizer: its threshold form.
  virtual LevelActivationExport export_activation_levels() const = 0;
};

}  // namespace qsdk
