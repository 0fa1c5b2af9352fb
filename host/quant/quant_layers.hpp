// Conv and linear layers made by the host's layer factory: plain, or wrapped
// with weight / activation / output quantizers (docs/methods.md#quantized-convolution,
// docs/methods.md#quantized-linear).
#pragma once

#include <qsdk/model.hpp>
#include <qsdk/quantizer.hpp>

#include <torch/nn/options/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

/// A weight pre-transform applied before weight quantization (e.g. var-mean):
/// (float weight, module path) -> transformed weight.
using WeightTransform = std::function<torch::Tensor(const torch::Tensor&, const std::string&)>;
/// The transforms of a model, shared by all its layers so tricks added after
/// the model was built still apply.
using WeightTransforms = std::vector<WeightTransform>;

/// (export) What `qhost export` puts in place of the quantizers' forwards while
/// it traces the model (onnx_export.cpp): each call returns a tensor the
/// trace can turn into standard integer operators. Set with
/// ExportHooksScope; the layers call the quantizers themselves otherwise.
class ExportHooks {
 public:
  virtual ~ExportHooks() = default;
  /// The dequantized weight of layer `path` that `quantizer` makes of
  /// `weight()` (the weight after the transforms, in the shape the quantizer
  /// sees: for a linear layer [1, 1, out, in]), viewed as `shape` (the layer's
  /// weight shape). `weight` is called by the hook, outside the trace.
  virtual torch::Tensor weight(const std::string& path, qsdk::QuantizerImpl& quantizer,
                               const std::function<torch::Tensor()>& weight, torch::IntArrayRef shape) = 0;
  /// The activation or output `x` of layer `path` through `quantizer`; `axis`
  /// is the channel axis of `x`.
  virtual torch::Tensor activation(const std::string& path, qsdk::QuantTarget target, qsdk::QuantizerImpl& quantizer,
                                   const torch::Tensor& x, int64_t axis) = 0;
  /// Whether a convolution pads its input before `quantizer` (as in
  /// evaluation) rather than after it: a QuantizeLinear/DequantizeLinear pair
  /// maps 0 to 0, so padding after it is exact; a threshold form need not (XNOR
  /// sends 0 to +1).
  virtual bool pads_first(qsdk::QuantizerImpl& quantizer) const = 0;
};

/// (export) Installs `hooks` for the quantized layers' forwards on this thread
/// for the scope's lifetime.
class ExportHooksScope {
 public:
  explicit ExportHooksScope(ExportHooks* hooks);
  ~ExportHooksScope();
  ExportHooksScope(const ExportHooksScope&) = delete;
  ExportHooksScope& operator=(const ExportHooksScope&) = delete;

 private:
  ExportHooks* previous_;
};

/// The quantizers of one layer; a null pointer means "not quantized".
struct LayerQuantizers {
  std::shared_ptr<qsdk::QuantizerImpl> weight;      ///< registered as `quant_weight`
  std::shared_ptr<qsdk::QuantizerImpl> activation;  ///< registered as `quant_activation`
  std::shared_ptr<qsdk::QuantizerImpl> output;      ///< registered as `quant_output`
  /// True when any quantizer is present.
  bool any() const { return weight || activation || output; }
};

/// A 2-D convolution. Without quantizers it is a standard convolution with its
/// own padding. With quantizers (docs/methods.md#quantized-convolution): Wq = quant_weight(transforms(W));
/// the input is zero-padded then quantized (or quantized then padded with
/// `padding_after_quant`); conv with padding 0; then quant_output.
class QuantConv2dImpl : public qsdk::Conv2dLayerImpl {
 public:
  /// `options` must have square, integer zero padding. Parameters are
  /// initialised like torch::nn::Conv2d (Kaiming uniform a = sqrt(5)).
  QuantConv2dImpl(std::string module_path, const torch::nn::Conv2dOptions& options, LayerQuantizers quantizers,
                  bool padding_after_quant, std::shared_ptr<const WeightTransforms> transforms);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor& weight() override { return weight_; }
  const torch::nn::Conv2dOptions& options() const override { return options_; }
  /// The attached quantizers.
  const LayerQuantizers& quantizers() const { return quantizers_; }
  /// (schedule) The module path the layer was made for.
  const std::string& module_path() const { return path_; }
  /// (schedule) Swaps the attached quantizer of `target` (which must exist) for
  /// `quantizer`, under the same submodule name (quant_rebuild.cpp).
  void replace_quantizer(qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> quantizer);

 private:
  std::string path_;
  torch::nn::Conv2dOptions options_;
  LayerQuantizers quantizers_;
  bool padding_after_quant_;
  std::shared_ptr<const WeightTransforms> transforms_;
  int64_t padding_ = 0;
  torch::Tensor weight_, bias_;
};

/// A fully connected layer (docs/methods.md#quantized-linear): weight quantizer sees [1, 1, out, in],
/// activation quantizer [N, in, 1, 1], output quantizer [N, out, 1, 1].
class QuantLinearImpl : public qsdk::LinearLayerImpl {
 public:
  /// Parameters are initialised like torch::nn::Linear.
  QuantLinearImpl(std::string module_path, const torch::nn::LinearOptions& options, LayerQuantizers quantizers,
                  std::shared_ptr<const WeightTransforms> transforms);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor& weight() override { return weight_; }
  /// The attached quantizers.
  const LayerQuantizers& quantizers() const { return quantizers_; }
  /// (schedule) The module path the layer was made for.
  const std::string& module_path() const { return path_; }
  /// (schedule) Swaps the attached quantizer of `target` (which must exist) for
  /// `quantizer`, under the same submodule name (quant_rebuild.cpp).
  void replace_quantizer(qsdk::QuantTarget target, std::shared_ptr<qsdk::QuantizerImpl> quantizer);

 private:
  std::string path_;
  LayerQuantizers quantizers_;
  std::shared_ptr<const WeightTransforms> transforms_;
  torch::Tensor weight_, bias_;
};

}  // namespace qhost
