// onnx_export.hpp - `qhost export`: a checkpoint as an ONNX model of standard
// operators, quantized layers as QuantizeLinear/DequantizeLinear around float
// Conv/Gemm (README "Deploy", docs/methods.md#export-to-onnx).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qhost {

class Registry;
class PluginLoader;

/// What `qhost export` was asked for.
struct ExportOptions {
  std::string checkpoint;              ///< HDF5 checkpoint, or a run folder (its best.h5)
  std::string output;                  ///< the .onnx file (or integer model) to write
  /// "onnx", or "qtool": the HDF5 integer model of docs/integer-model.md.
  std::string format = "onnx";
  int64_t opset = 13;                  ///< ONNX opset of the default domain, [13, 17]
  int64_t batch = -1;                  ///< fixed batch size; -1 = dynamic ("batch")
  std::vector<std::string> overrides;  ///< --set overrides applied to the stored config
  bool trust_checkpoint_plugins = false;  ///< load plugin paths named by the stored config
  bool synthetic = false;              ///< stand-in data (the dataset's files are not needed)
  /// When non-empty: also writes PREFIX.input.npy (a seeded N(0, 1) batch) and
  /// PREFIX.logits.npy (qhost's fake-quantized logits of it), to check a runtime against.
  std::string reference;
  int64_t reference_batch = 4;         ///< samples in the reference batch
  uint64_t reference_seed = 0;         ///< seed of the reference batch
};

/// The smallest and largest opset `qhost export` writes: 13 brought per-axis
/// QuantizeLinear/DequantizeLinear; 17 is the newest that Debian's onnx
/// checker (1.12) knows.
constexpr int64_t kMinExportOpset = 13;
constexpr int64_t kMaxExportOpset = 17;

/// Exports the checkpoint; returns the exit code. Throws qsdk::Error: usage
/// (bad options), checkpoint, config (a quantizer with no exact ONNX form,
/// naming the layer and the method), runtime (an operator with no ONNX mapping).
int export_checkpoint(Registry& registry, PluginLoader& loader, const ExportOptions& options);


}  // namespace qhost
