// make_layer_factory() and build_model(): [quant] and [model] through the registry.
#include "quant/model_builder.hpp"

#include "plugins/registry.hpp"

#include <spdlog/spdlog.h>

namespace qhost {

std::unique_ptr<LayerFactory> make_layer_factory(QuantPolicy policy, Registry& registry, int64_t batch_size,
                                                 int64_t input_size) {
  return std::make_unique<LayerFactory>(
      std::move(policy), [&registry](const qsdk::Table& t, const qsdk::QuantizerContext& c) { return registry.make_quantizer(t, c); },
      batch_size, input_size);
}

std::shared_ptr<qsdk::ModelImpl> build_model(const qsdk::Table& model, Registry& registry, LayerFactory& factory,
                                             int64_t num_classes, const std::vector<int64_t>& sample_shape) {
  qsdk::ModelContext mctx;
  mctx.num_classes = num_classes;
  mctx.input_shape = sample_shape;
  mctx.layers = &factory;
  auto net = registry.make_model(model, mctx);
  int64_t quantized = 0;
  for (const auto& r : factory.records()) {
    spdlog::debug("layer {}", r.str());
    quantized += (r.weight.active() || r.activation.active() || r.output.active()) ? 1 : 0;
  }
  int64_t n_params = 0;
  for (const auto& p : net->parameters()) n_params += p.numel();
  spdlog::info("model: {} ({} parameters, {} layers, {} quantized)", model.at("type").as_string(), n_params,
               factory.records().size(), quantized);
  return net;
}

}  // namespace qhost
