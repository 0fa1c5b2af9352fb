// The host's qsdk::LayerFactory: makes every conv/linear of a model, plain or
// quantized according to the validated `[quant]` table (docs/CONTRACTS.md,
// docs/methods.md#which-layers-are-quantized).
#pragma once

#include "quant/quant_layers.hpp"
#include "quant/quant_policy.hpp"

#include <qsdk/model.hpp>
#include <qsdk/quantizer.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// Makes a quantizer from a component table with `type` (the Registry's make_quantizer).
using QuantizerMaker =
    std::function<std::shared_ptr<qsdk::QuantizerImpl>(const qsdk::Table&, const qsdk::QuantizerContext&)>;

/// What is attached to one tensor of a layer.
struct QuantSlot {
  std::string type = "none";  ///< quantizer name, "none" when not quantized
  int64_t levels = 0;         ///< the quantizer's num_levels() (0 when not quantized)
  /// True when a quantizer is attached.
  bool active() const { return type != "none"; }
  /// "lsq/2b" (2^bits levels), "ternary/3L" (any other count) or "none".
  std::string str() const;
};

/// One layer the factory made (for the run log and tests).
struct LayerRecord {
  int64_t index = 0;     ///< creation order (the reference's layer index, docs/methods.md#layer-indices)
  std::string path;      ///< module path
  qsdk::LayerRole role = qsdk::LayerRole::body;  ///< what the layer is for
  std::string kind;      ///< "conv2d" or "linear"
  QuantSlot weight, activation, output;  ///< attached quantizers
  /// One line: "3 layer1.0.conv1.0 body conv2d w=lsq/2b a=lsq/2b o=none".
  std::string str() const;
};

/// qsdk::LayerFactory implementation of the host.
class LayerFactory : public qsdk::LayerFactory {
 public:
  /// `policy` says which tensors are quantized and how; `make_quantizer`
  /// builds quantizers; `batch_size` and `input_size` go into every
  /// qsdk::QuantizerContext.
  LayerFactory(QuantPolicy policy, QuantizerMaker make_quantizer, int64_t batch_size, int64_t input_size);
  /// The same with the policy parsed from a `[quant]` table (may be empty: everything FP).
  LayerFactory(const qsdk::Table& quant, QuantizerMaker make_quantizer, int64_t batch_size, int64_t input_size);

  std::shared_ptr<qsdk::Conv2dLayerImpl> conv2d(const std::string& module_path, qsdk::LayerRole role,
                                                const torch::nn::Conv2dOptions& options) override;
  std::shared_ptr<qsdk::LinearLayerImpl> linear(const std::string& module_path, qsdk::LayerRole role,
                                                const torch::nn::LinearOptions& options) override;

  /// Adds a weight pre-transform; it applies to every layer with a weight
  /// quantizer, including layers made before this call.
  void add_weight_transform(WeightTransform transform);
  /// Every layer made so far, in creation order.
  const std::vector<LayerRecord>& records() const { return records_; }
  /// The policy.
  const QuantPolicy& policy() const { return policy_; }
  /// The quantizer maker.
  const QuantizerMaker& quantizer_maker() const { return make_quantizer_; }
  /// The per-rank batch size given to every quantizer context.
  int64_t batch_size() const { return batch_size_; }
  /// The training input resolution given to every quantizer context.
  int64_t input_size() const { return input_size_; }

 private:
  LayerQuantizers make_quantizers(const std::string& path, qsdk::LayerRole role,
                                  const std::vector<int64_t>& weight_shape, int64_t in, int64_t out,
                                  LayerRecord& record);
  QuantPolicy policy_;
  QuantizerMaker make_quantizer_;
  int64_t batch_size_;
  int64_t input_size_;
  std::shared_ptr<WeightTransforms> transforms_;
  std::vector<LayerRecord> records_;
};

}  // namespace qhost
