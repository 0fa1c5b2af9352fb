#include <torch/torch.h>

#include "test_support.hpp"

#include "plugins.hpp"

#include <stdexcept>

namespace qtest {

const qsdk::ComponentSpec& model_spec(const std::string& name) {
  return qtool_test::TestPlugins::instance().spec(qsdk::Kind::model, name);
}

const qsdk::ComponentSpec& quantizer_spec(const std::string& name) {
  return qtool_test::TestPlugins::instance().spec(qsdk::Kind::quantizer, name);
}

TestQuantizer::TestQuantizer(const qsdk::Table& options, const qsdk::QuantizerContext& ctx) : ctx_(ctx) {
  if (auto it = options.find("bits"); it != options.end()) bits_ = it->second.as_int();
  if (auto it = options.find("offset"); it != options.end()) offset_ = it->second.as_double();
  clip_val_ = register_parameter("clip_val", torch::ones({1}));
}

torch::Tensor TestQuantizer::forward(const torch::Tensor& x) {
  const double n = static_cast<double>(int64_t{1} << bits_);
  // Straight-through rounding so gradients flow in the backward tests.
  torch::Tensor q = x + (torch::round(x * n) / n - x).detach();
  return q * clip_val_ + offset_;
}

qhost::QuantizerMaker QuantizerLog::maker() {
  return [this](const qsdk::Table& t, const qsdk::QuantizerContext& ctx) {
    contexts.push_back(ctx);
    tables.push_back(t);
    return std::make_shared<TestQuantizer>(t, ctx);
  };
}

std::shared_ptr<qsdk::ModelImpl> make_model(const std::string& name, const qsdk::Table& options,
                                            qsdk::LayerFactory& layers, int64_t num_classes,
                                            std::vector<int64_t> input_shape) {
  const auto& spec = model_spec(name);
  for (const auto& [key, value] : options)
    if (!spec.schema.find(key)) throw std::runtime_error(name + " has no option " + key);
  qsdk::ModelContext ctx;
  ctx.num_classes = num_classes;
  ctx.input_shape = std::move(input_shape);
  ctx.layers = &layers;
  return std::get<qsdk::ModelFactory>(spec.factory)(options, ctx);
}

std::map<std::string, std::vector<int64_t>> shapes(const torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace qtest
