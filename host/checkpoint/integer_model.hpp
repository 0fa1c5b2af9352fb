// integer_model.hpp - the qtool integer model (`qhost export --format qtool`,
// docs/integer-model.md): per quantized layer the weight's bit-packed integer
// codes with their scale (or level table), each activation/output quantizer's
// integer form and the folded batch norm that follows a layer, next to the
// model's full-precision tensors and configuration. `qhost eval` reads it back
// into the fake-quantized model it came from.
#pragma once

#include "checkpoint/checkpoint.hpp"
#include "quant/layer_factory.hpp"
#include "quant/quant_layers.hpp"

#include <qsdk/quantizer.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

/// `/meta` content of an integer model and the newest layout version this
/// qhost reads and writes. Version 2 added activation threshold forms; the
/// writer stamps a file 1 when it holds none, so a version-1 reader still
/// reads every file that needs nothing newer (docs/integer-model.md#versions).
inline constexpr const char* kIntegerModelContent = "integer-model";
inline constexpr int64_t kIntegerModelVersion = 2;
/// The first layout with activation threshold forms.
inline constexpr int64_t kIntegerModelThresholdVersion = 2;

/// A quantized weight: the layer's weight equals codes * scale (scale broadcast
/// along `axis`), or levels[packed code] when `levels` is defined.
struct IntegerWeight {
  std::string layer;     ///< module path of the layer (LayerRecord::path)
  torch::Tensor codes;   ///< integer codes, the layer's weight shape
  torch::Tensor scale;   ///< float32, [1] or [shape[axis]]; undefined with levels
  int64_t axis = 0;      ///< axis of a per-channel scale or level table
  /// Non-uniform weights: float32 [2^bits] or [shape[axis], 2^bits], indexed by
  /// the code; `codes` then holds indices in [0, 2^bits).
  torch::Tensor levels;
  /// The method's level count (LayerRecord's QuantSlot::levels, 0 = unknown):
  /// codes pack with at least ceil(log2(num_levels)) bits, so the stored width
  /// is the method's even when a layer uses fewer of its levels.
  int64_t num_levels = 0;
};

/// An activation or output quantizer: y = (clamp(round(x / scale) + zero_point,
/// qmin, qmax) - zero_point) * scale, the scale broadcast along `axis` of x;
/// or, when `thresholds` is defined, the threshold form of
/// qsdk::LevelActivationExport (scale, zero_point, qmin, qmax unused).
struct IntegerActivation {
  std::string layer;
  qsdk::QuantTarget target = qsdk::QuantTarget::activation;
  torch::Tensor scale;  ///< float32, [1] or one per channel
  int64_t zero_point = 0, qmin = 0, qmax = 255;
  int64_t axis = 1;  ///< channel axis of the quantized tensor
  /// Threshold form: float32 [L - 1] and [L], or [C, L - 1] and [C, L] along `axis`.
  torch::Tensor thresholds, levels;
  bool upper_at_ties = false;  ///< a value at a threshold (and NaN) passes it
};

/// The batch norm that directly follows a quantized layer, folded into a
/// per-output-channel affine map of the layer's output (bias included):
/// bn(layer(x)) = scale * (layer without bias)(x) + shift.
struct FoldedNorm {
  std::string layer;
  torch::Tensor scale, shift;  ///< float32 [C_out]
};

/// Everything an integer model holds.
struct IntegerModel {
  CheckpointMeta meta;  ///< epoch, configuration (content is set by the writer)
  NamedTensors floats;  ///< every parameter and buffer except the quantized weights
  std::vector<IntegerWeight> weights;
  std::vector<IntegerActivation> activations;
  std::vector<FoldedNorm> norms;
};

/// The weight parameter name ("layer1.0.conv1.0.weight") of every host
/// quantized layer of `model`, by the layer's module path.
std::map<std::string, std::string> layer_weight_names(const torch::nn::Module& model);

/// Writes `m` to `path` (atomically, as write_checkpoint) in the layout of
/// docs/integer-model.md#layout. Throws qsdk::Error (runtime: codes that do not
/// pack into 16 bits; checkpoint: a failed write).
void write_integer_model(const std::string& path, const IntegerModel& m);

/// Reads the integer model `path` into `model` (rebuilt from its stored
/// configuration; `layers` are its factory's records) with the checkpoint
/// reader's hostile-file rules: every `/integer` entry checked against the
/// model before any read, exact packed sizes, no NaN. The quantized weights
/// are loaded decoded (codes * scale or levels[code]). Returns the hooks under
/// which the model's forward uses those weights and the stored activation
/// forms instead of its quantizers. Throws qsdk::Error(checkpoint) naming the
/// file and dataset.
std::shared_ptr<ExportHooks> load_integer_model(torch::nn::Module& model, const std::vector<LayerRecord>& layers,
                                                const std::string& path, bool allow_nonfinite);

}  // namespace qhost
