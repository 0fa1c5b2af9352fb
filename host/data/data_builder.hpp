// data_builder.hpp - an experiment's datasets and loaders, built from [data]
// and [experiment] seed (the data part of `qhost run` / `qhost eval`).
#pragma once

#include "data/data_loader.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace qhost {

class Config;
class Registry;

/// What build_data() makes.
struct DataParts {
  std::unique_ptr<DataLoader> train_loader;  ///< shuffled training batches; null unless `train`
  std::unique_ptr<DataLoader> eval_loader;   ///< evaluation batches, in order, each rank its own part
  int64_t num_classes = 0;                   ///< classes of the dataset
  std::vector<int64_t> sample_shape;         ///< one sample, e.g. [C, H, W]
};

/// Makes the dataset plugin's training split (when `train`) and evaluation
/// split and their loaders for rank `rank` of `world_size`. Throws
/// qsdk::Error (config) naming [data] when it has no `type`.
DataParts build_data(const Config& config, Registry& registry, bool train, int64_t rank = 0,
                     int64_t world_size = 1);

}  // namespace qhost
