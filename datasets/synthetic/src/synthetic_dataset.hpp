// synthetic_dataset.hpp - seeded random images and labels.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/dataset.hpp>
#include <qsdk/schema.hpp>

#include <string>
#include <vector>

namespace qplug_synthetic {

/// Options of `dataset/synthetic`.
///
/// Example:
/// ```
/// [data]
/// type = "synthetic"
/// num_samples = 512
/// num_classes = 10
/// channels = 3
/// height = 32
/// width = 32
/// ```
struct SyntheticOptions {
  int64_t num_samples = 1024;  ///< dataset length
  int64_t num_classes = 10;    ///< labels in [0, num_classes)
  int64_t channels = 3;        ///< C
  int64_t height = 32;         ///< H
  int64_t width = 32;          ///< W
  double signal = 1.0;         ///< per-class channel offset scale (0 = pure noise, unlearnable)
  int64_t seed = -1;           ///< data seed; -1 = the experiment seed

  /// The schema bound to these fields.
  static qsdk::Schema<SyntheticOptions> schema();
};

/// Sample i: label and a standard-normal image drawn from a generator seeded
/// by (seed, split, i), plus a per-class, per-channel offset of size `signal`
/// so that a network can learn something. Deterministic per index and seed,
/// independent of the worker's generator; the train and eval splits differ.
class SyntheticDataset : public qsdk::Dataset {
 public:
  /// Checks the options.
  SyntheticDataset(SyntheticOptions options, const qsdk::DatasetContext& context);

  int64_t size() const override { return options_.num_samples; }
  int64_t num_classes() const override { return options_.num_classes; }
  std::vector<int64_t> sample_shape() const override { return {options_.channels, options_.height, options_.width}; }
  qsdk::Example get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;

 private:
  SyntheticOptions options_;
  uint64_t seed_ = 0;
  std::vector<float> class_offsets_;  // num_classes x channels
};

}  // namespace qplug_synthetic
