// model_builder.hpp - an experiment's layer factory (from [quant]) and its
// network (from [model]), the model part of `qhost run` / `qhost eval`.
#pragma once

#include "quant/layer_factory.hpp"

#include <qsdk/model.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace qhost {

class Registry;

/// The layer factory of the `[quant]` policy (Config::quant_policy()), whose
/// quantizers the registry's plugins make. `batch_size` and `input_size` (the side of an
/// input image) are what the quantizers' contexts report.
std::unique_ptr<LayerFactory> make_layer_factory(QuantPolicy policy, Registry& registry, int64_t batch_size,
                                                 int64_t input_size);

/// Builds the `[model]` table's network through `factory` (which then holds a
/// record of every layer) and logs its parameters and quantized layers.
std::shared_ptr<qsdk::ModelImpl> build_model(const qsdk::Table& model, Registry& registry, LayerFactory& factory,
                                             int64_t num_classes, const std::vector<int64_t>& sample_shape);

}  // namespace qhost
