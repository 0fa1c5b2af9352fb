// qsdk/dataset.hpp - dataset readers (kind `dataset`).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <torch/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace qsdk {

/// One transformed sample.
struct QSDK_API Example {
  torch::Tensor image;  ///< float [C, H, W], normalized
  int64_t label = 0;    ///< class index
};

/// Which split a dataset is opened for.
struct QSDK_API DatasetContext {
  bool train = true;   ///< training split (augmenting) or evaluation split
  uint64_t seed = 0;   ///< experiment seed (for synthetic data)
};

/// An indexed dataset with its transforms. `get` must be thread-safe: the host
/// calls it from several worker threads, each passing its own generator, so
/// augmentation is deterministic for a given seed.
class QSDK_API Dataset {
 public:
  virtual ~Dataset();
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// Number of classes.
  virtual int64_t num_classes() const = 0;
  /// Shape of one transformed sample, [C, H, W].
  virtual std::vector<int64_t> sample_shape() const = 0;
  /// Sample `index` (0 <= index < size()), augmented with `rng` when training.
  virtual Example get(int64_t index, std::mt19937_64& rng) const = 0;
  /// Human-readable description (source, size), for the log.
  virtual std::string describe() const { return {}; }
};

}  // namespace qsdk
