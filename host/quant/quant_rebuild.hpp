// quant_rebuild.hpp - (schedule) rebuilds a model's quantizers after a
// `[[schedule]]` entry changed `[quant]` options, carrying their learned state.
#pragma once

#include "quant/layer_factory.hpp"

#include <qsdk/quantizer.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch {
namespace nn {
class Module;
}
}  // namespace torch

namespace qhost {

/// What one rebuild() did.
struct RebuildReport {
  /// A tensor name with what happened to it and in how many quantizers.
  struct Count {
    std::string label;  ///< "clip_val", or "level_num (its initial value depends on the changed option)"
    int64_t n = 0;      ///< quantizers
  };
  int64_t rebuilt = 0;               ///< quantizers replaced
  std::vector<Count> carried;        ///< state copied from the old quantizer
  std::vector<Count> reinitialised;  ///< state the new quantizer initialised (with the reason)
  std::vector<Count> dropped;        ///< state of the old quantizers the new ones lack
  /// True when any quantizer was replaced (so there are new parameter tensors).
  bool changed_tensors() const { return rebuilt > 0; }
  /// "rebuilt 31 quantizers; carried over: iteration (31), clip_val (13); re-initialised: ...".
  std::string summary() const;
};

/// The quantizers of a built model and the `[quant]` policy they came from.
///
/// set_option() edits the policy (a copy of the layer factory's); rebuild()
/// resolves every layer's quantizer table again (QuantPolicy::resolve, so
/// `[[quant.override]]` entries apply as when the model was built) and replaces
/// each quantizer whose table changed with one the registry makes from the new
/// table. The new quantizer takes over the old one's parameters and buffers
/// by name where the shapes match, except a tensor whose value right after
/// construction differs between the old and the new options (e.g. LSQ's
/// `level_num` when `bits` changes): that one depends on the changed option
/// and keeps the new quantizer's initial value. Anything else (a new name, a
/// new shape) keeps the new quantizer's initial value too. Both reference
/// constructions start from the same random state, and the global random
/// generator is left as it was, so a rebuild never perturbs the run.
class QuantRebuilder {
 public:
  /// `factory` made the layers of `model`: its policy, quantizer maker,
  /// contexts and records (each layer's role) are the starting point. Finds
  /// every QuantConv2d / QuantLinear of `model`.
  QuantRebuilder(const LayerFactory& factory, std::shared_ptr<torch::nn::Module> model);
  ~QuantRebuilder();

  /// Sets `key` of the policy: "activation.bits" or "override[1].activation.bits"
  /// (relative to `[quant]`, QuantKey). Returns the previous value. Throws
  /// qsdk::Error(runtime) when the key does not name an option of an existing
  /// quantizer table.
  qsdk::Value set_option(const std::string& key, const qsdk::Value& value);
  /// Replaces every quantizer whose resolved table changed since the last rebuild.
  RebuildReport rebuild();
  /// The current policy.
  const QuantPolicy& policy() const { return policy_; }
  /// The model.
  torch::nn::Module& model() const { return *model_; }
  /// Number of quantizers found in the model.
  size_t size() const;

 private:
  struct Slot;
  QuantPolicy policy_;
  QuantizerMaker make_;
  std::shared_ptr<torch::nn::Module> model_;
  std::vector<Slot> slots_;
};

}  // namespace qhost
