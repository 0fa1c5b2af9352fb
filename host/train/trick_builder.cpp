// build_tricks(): [[trick]] through the registry, KD teachers included.
#include "train/trick_builder.hpp"

#include "checkpoint/checkpoint.hpp"
#include "config/config.hpp"
#include "config/sections.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <utility>

namespace qhost {

TrickParts build_tricks(const Config& config, Registry& registry, LayerFactory& factory, int64_t num_classes,
                        const std::vector<int64_t>& sample_shape, bool allow_nonfinite) {
  TrickParts out;
  const auto& root = config.root();
  auto tricks_it = root.find("trick");
  if (tricks_it == root.end() || tricks_it->second.type() != qsdk::Value::Type::list) return out;
  const int64_t batch = section_options<DataOptions>(root, "data").batch_size;
  const int64_t input_size = sample_shape.size() >= 2 ? sample_shape[1] : 0;
  qsdk::TrickContext tctx;
  tctx.config_dir = config.path().empty() ? "." : std::filesystem::path(config.path()).parent_path().string();
  tctx.num_classes = num_classes;
  // (experiments) FP model + checkpoint for trick/kd's teacher: built through its own
  // quantizer-free layer factory, which the returned pointer keeps alive (aliasing).
  tctx.load_model = [&registry, &config, sample_shape, num_classes, batch, input_size, allow_nonfinite](
                        const qsdk::Table& model, const std::string& checkpoint_path) {
    auto teacher_factory = std::make_shared<LayerFactory>(qsdk::Table{}, QuantizerMaker{}, batch, input_size);
    qsdk::ModelContext c;
    c.num_classes = num_classes;
    c.input_shape = sample_shape;
    c.layers = teacher_factory.get();
    auto net = registry.make_model(model, c);
    if (!skipped_for_synthetic(config, checkpoint_path, "teacher checkpoint")) {
      CheckpointReadOptions ro;
      ro.model = net.get();  // checked against the teacher before any data is read
      ro.read_optimizer = false;
      ro.allow_nonfinite = allow_nonfinite;
      load_module_state(*net, read_checkpoint(checkpoint_path, ro).model, checkpoint_path);
    }
    auto holder = std::make_shared<std::pair<std::shared_ptr<LayerFactory>, std::shared_ptr<qsdk::ModelImpl>>>(
        std::move(teacher_factory), net);
    return std::shared_ptr<qsdk::ModelImpl>(holder, net.get());
  };
  const auto& list = tricks_it->second.as_list();
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& t = list[i].as_table();
    std::shared_ptr<qsdk::Trick> trick;
    try {
      trick = registry.make_trick(t, tctx);
    } catch (const qsdk::Error& e) {
      // Name the [[trick]] entry (file:line) a failing trick came from.
      const std::string key = "trick[" + std::to_string(i) + "]";
      throw qsdk::Error(e.category(), e.place(), e.message() + " [" + key + " at " + config.location(key).str() + "]",
                        e.hint());
    }
    factory.add_weight_transform(
        [trick](const torch::Tensor& w, const std::string& path) { return trick->transform_weight(w, path); });
    out.tricks.push_back(trick);
    out.names.push_back("trick/" + t.at("type").as_string());
  }
  return out;
}

}  // namespace qhost
