// qsdk/model.hpp - the model interface (kind `model`) and the layer factory.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>
#include <qsdk/roles.hpp>

#include <torch/nn/module.h>
#include <torch/nn/options/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qsdk {

/// A convolution made by the host: plain, or wrapped with quantizers.
/// Parameters are `weight` (and `bias`); quantizers are submodules
/// `quant_weight`, `quant_activation`, `quant_output` when present.
class QSDK_API Conv2dLayerImpl : public torch::nn::Module {
 public:
  ~Conv2dLayerImpl() override;
  /// Applies the (quantized) convolution.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// The float weight [C_out, C_in/groups, k, k].
  virtual torch::Tensor& weight() = 0;
  /// The options it was made with.
  virtual const torch::nn::Conv2dOptions& options() const = 0;
};

/// A fully connected layer made by the host (same conventions as Conv2dLayerImpl).
class QSDK_API LinearLayerImpl : public torch::nn::Module {
 public:
  ~LinearLayerImpl() override;
  /// Applies the (quantized) affine map.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// The float weight [out, in].
  virtual torch::Tensor& weight() = 0;
};

/// Makes every conv and linear of a model, so quantizers attach without the
/// model knowing them. `module_path` is the full dotted path the layer will
/// have in the model (e.g. "layer1.0.conv1"), used by `[[quant.override]]`.
class QSDK_API LayerFactory {
 public:
  virtual ~LayerFactory();
  /// A 2-D convolution with the given role.
  virtual std::shared_ptr<Conv2dLayerImpl> conv2d(const std::string& module_path, LayerRole role,
                                                  const torch::nn::Conv2dOptions& options) = 0;
  /// A linear layer with the given role.
  virtual std::shared_ptr<LinearLayerImpl> linear(const std::string& module_path, LayerRole role,
                                                  const torch::nn::LinearOptions& options) = 0;
};

/// What a model is built for.
struct QSDK_API ModelContext {
  /// Number of classes of the dataset.
  int64_t num_classes = 10;
  /// Shape of one input sample, [C, H, W].
  std::vector<int64_t> input_shape{3, 32, 32};
  /// Makes the convolutions and linears. Never null while building.
  LayerFactory* layers = nullptr;
};

/// An image classifier: [N, C, H, W] images to [N, num_classes] logits.
class QSDK_API ModelImpl : public torch::nn::Module {
 public:
  ~ModelImpl() override;
  /// Computes logits.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

}  // namespace qsdk
