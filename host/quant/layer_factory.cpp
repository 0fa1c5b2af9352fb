#include <torch/torch.h>

#include "quant/layer_factory.hpp"

#include <qsdk/error.hpp>

namespace qhost {

std::string QuantSlot::str() const {
  if (!active()) return "none";
  // Read from the quantizer, not from its options: the host does not know
  // which option (if any) of a plugin means bits.
  int64_t bits = 0;
  while (bits < 62 && (int64_t{1} << bits) < levels) ++bits;
  if (levels >= 2 && (int64_t{1} << bits) == levels) return type + "/" + std::to_string(bits) + "b";
  return levels > 0 ? type + "/" + std::to_string(levels) + "L" : type;
}

std::string LayerRecord::str() const {
  return std::to_string(index) + " " + path + " " + qsdk::to_string(role) + " " + kind + " w=" + weight.str() +
         " a=" + activation.str() + " o=" + output.str();
}

LayerFactory::LayerFactory(const qsdk::Table& quant, QuantizerMaker make_quantizer, int64_t batch_size,
                           int64_t input_size)
    : LayerFactory(QuantPolicy::from_table(quant), std::move(make_quantizer), batch_size, input_size) {}

LayerFactory::LayerFactory(QuantPolicy policy, QuantizerMaker make_quantizer, int64_t batch_size, int64_t input_size)
    : policy_(std::move(policy)),
      make_quantizer_(std::move(make_quantizer)),
      batch_size_(batch_size),
      input_size_(input_size),
      transforms_(std::make_shared<WeightTransforms>()) {
  if (policy_.quantizes_anything() && !make_quantizer_)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "quant", "layer factory has no quantizer maker");
}

void LayerFactory::add_weight_transform(WeightTransform transform) { transforms_->push_back(std::move(transform)); }

LayerQuantizers LayerFactory::make_quantizers(const std::string& path, qsdk::LayerRole role,
                                              const std::vector<int64_t>& weight_shape, int64_t in, int64_t out,
                                              LayerRecord& record) {
  LayerQuantizers q;
  auto make = [&](qsdk::QuantTarget target, std::vector<int64_t> shape, QuantSlot& slot) {
    auto table = policy_.resolve(path, role, target);
    if (!table) return std::shared_ptr<qsdk::QuantizerImpl>();
    qsdk::QuantizerContext ctx;
    ctx.target = target;
    ctx.shape = std::move(shape);
    ctx.module_path = path;
    ctx.role = role;
    ctx.batch_size = batch_size_;
    ctx.input_size = input_size_;
    auto quantizer = make_quantizer_(*table, ctx);
    if (!quantizer)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, path,
                        std::string("quantizer maker returned nothing for the ") + qsdk::to_string(target));
    slot.type = table->at("type").as_string();
    slot.levels = quantizer->num_levels();
    return quantizer;
  };
  q.weight = make(qsdk::QuantTarget::weight, weight_shape, record.weight);
  q.activation = make(qsdk::QuantTarget::activation, {1, in, 1, 1}, record.activation);
  q.output = make(qsdk::QuantTarget::output, {1, out, 1, 1}, record.output);
  return q;
}

std::shared_ptr<qsdk::Conv2dLayerImpl> LayerFactory::conv2d(const std::string& module_path, qsdk::LayerRole role,
                                                            const torch::nn::Conv2dOptions& options) {
  LayerRecord record;
  record.index = static_cast<int64_t>(records_.size());
  record.path = module_path;
  record.role = role;
  record.kind = "conv2d";
  // docs/methods.md#groups-and-derived-quantities: the weight shape passes C_in (not C_in / groups).
  std::vector<int64_t> wshape{options.out_channels(), options.in_channels()};
  for (int64_t k : *options.kernel_size()) wshape.push_back(k);
  auto q = make_quantizers(module_path, role, wshape, options.in_channels(), options.out_channels(), record);
  auto layer = std::make_shared<QuantConv2dImpl>(module_path, options, std::move(q), policy_.padding_after_quant,
                                                 transforms_);
  records_.push_back(std::move(record));
  return layer;
}

std::shared_ptr<qsdk::LinearLayerImpl> LayerFactory::linear(const std::string& module_path, qsdk::LayerRole role,
                                                            const torch::nn::LinearOptions& options) {
  LayerRecord record;
  record.index = static_cast<int64_t>(records_.size());
  record.path = module_path;
  record.role = role;
  record.kind = "linear";
  auto q = make_quantizers(module_path, role, {1, 1, options.out_features(), options.in_features()},
                           options.in_features(), options.out_features(), record);
  auto layer = std::make_shared<QuantLinearImpl>(module_path, options, std::move(q), transforms_);
  records_.push_back(std::move(record));
  return layer;
}

}  // namespace qhost
