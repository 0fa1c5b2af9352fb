// checkpoint_model.hpp - a model rebuilt from a checkpoint alone, for commands
// that use the network without training or evaluating it (`qhost export`).
#pragma once

#include "quant/layer_factory.hpp"

#include <qsdk/model.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

class Registry;
class PluginLoader;

/// The network of a checkpoint with its weights and quantizer state loaded.
struct CheckpointModel {
  std::shared_ptr<qsdk::ModelImpl> model;  ///< in eval mode
  std::vector<int64_t> sample_shape;       ///< one input sample, [C, H, W]
  int64_t num_classes = 0;                 ///< logits per sample
  std::vector<LayerRecord> layers;         ///< what the layer factory made (quantizer types per layer)
  std::string resolved_toml;               ///< the configuration it was rebuilt from
  int64_t epoch = 0;                       ///< the checkpoint's epoch
  std::shared_ptr<void> keep_alive;        ///< the layer factory and tricks the model uses
};

/// How load_checkpoint_model() rebuilds a model.
struct CheckpointModelOptions {
  std::vector<std::string> overrides;     ///< --set overrides of the stored configuration
  bool trust_checkpoint_plugins = false;  ///< load plugin paths the stored configuration names
  bool synthetic = false;                 ///< stand-in data of the same shape (no dataset files needed)
};

/// Rebuilds the model of `checkpoint` from its stored configuration and loads
/// its tensors strictly, with `qhost eval`'s safety (plugin paths named by the
/// checkpoint refused unless trusted, entries checked against the model before
/// any data is read, NaN/inf refused); throws qsdk::Error (checkpoint, config,
/// plugin) as `qhost eval` does.
CheckpointModel load_checkpoint_model(Registry& registry, PluginLoader& loader, const std::string& checkpoint,
                                      const CheckpointModelOptions& options);

}  // namespace qhost
