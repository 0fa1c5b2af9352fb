// Helpers of the model tests: the model plugins (loaded through the host's
// PluginLoader, tests/support/plugins.hpp) and a simple test quantizer that
// records the context it was made with.
#pragma once

#include "quant/layer_factory.hpp"

#include <qsdk/registrar.hpp>

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qtest {

/// The spec of model `name`, registered by plugin `name` (loaded if needed;
/// qsdk::Error on failure).
const qsdk::ComponentSpec& model_spec(const std::string& name);
/// The spec of quantizer `name`, registered by plugin `name` (loaded if needed).
const qsdk::ComponentSpec& quantizer_spec(const std::string& name);

/// A fake quantizer: y = round(x * 2^bits) / 2^bits + offset, with a learned
/// `clip_val` so it shows up in state dicts.
class TestQuantizer : public qsdk::QuantizerImpl {
 public:
  TestQuantizer(const qsdk::Table& options, const qsdk::QuantizerContext& ctx);
  torch::Tensor forward(const torch::Tensor& x) override;
  int64_t num_levels() const override { return int64_t{1} << bits_; }
  const qsdk::QuantizerContext& context() const { return ctx_; }

 private:
  qsdk::QuantizerContext ctx_;
  int64_t bits_ = 2;
  double offset_ = 0.0;
  torch::Tensor clip_val_;
};

/// A quantizer maker building TestQuantizers and remembering each context.
struct QuantizerLog {
  std::vector<qsdk::QuantizerContext> contexts;
  std::vector<qsdk::Table> tables;
  qhost::QuantizerMaker maker();
};

/// Builds model `name` with options `options` through a layer factory.
std::shared_ptr<qsdk::ModelImpl> make_model(const std::string& name, const qsdk::Table& options,
                                            qsdk::LayerFactory& layers, int64_t num_classes,
                                            std::vector<int64_t> input_shape);

/// name -> shape of every parameter and buffer.
std::map<std::string, std::vector<int64_t>> shapes(const torch::nn::Module& m);

/// Total number of parameter elements.
int64_t parameter_count(const torch::nn::Module& m);

}  // namespace qtest
