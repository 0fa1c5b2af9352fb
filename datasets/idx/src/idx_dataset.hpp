// idx_dataset.hpp - MNIST-style IDX datasets (MNIST, Fashion-MNIST, ...).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/transforms.hpp"

#include <qsdk/dataset.hpp>
#include <qsdk/schema.hpp>

#include <string>
#include <vector>

namespace qplug_idx {

/// Options of `dataset/idx`. The reference has no MNIST pipeline; defaults
/// are the usual ones: 1 grey channel at native size, no augmentation, MNIST
/// mean/std (0.1307, 0.3081). For Fashion-MNIST use mean [0.2860], std [0.3530].
///
/// Example:
/// ```
/// [data]
/// type = "idx"
/// root = "/usr/share/datasets/fashion-mnist"
/// mean = [0.2860]
/// std = [0.3530]
/// ```
struct IdxOptions : qplug_transforms::TransformOptions {
  std::string root;                                      ///< folder holding the files
  std::string train_images = "train-images-idx3-ubyte";  ///< train images (".gz" tried too)
  std::string train_labels = "train-labels-idx1-ubyte";  ///< train labels
  std::string test_images = "t10k-images-idx3-ubyte";    ///< test images
  std::string test_labels = "t10k-labels-idx1-ubyte";    ///< test labels
  int64_t num_classes = 10;                              ///< labels must be below this
  /// Largest payload a file may announce or decompress to (default 1 GiB):
  /// a corrupt header or a gzip bomb is refused before it costs more memory.
  int64_t max_bytes = int64_t(1) << 30;

  IdxOptions() {
    size = 0;
    random_resized_crop = false;
    resize = 0;
    pad = 0;
    flip = false;
    mean = {0.1307};
    stddev = {0.3081};
  }
  /// The schema bound to these fields.
  static qsdk::Schema<IdxOptions> schema();
};

/// Images [N, H, W] (or [N, H, W, C]) and labels [N] from IDX files, raw or
/// gzip, held in memory.
class IdxDataset : public qsdk::Dataset {
 public:
  /// Loads the split chosen by `context.train`; throws qsdk::Error(data) on a
  /// missing, truncated or inconsistent file.
  IdxDataset(IdxOptions options, const qsdk::DatasetContext& context);

  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return options_.num_classes; }
  std::vector<int64_t> sample_shape() const override { return transform_.output_shape(width_, height_); }
  qsdk::Example get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override { return description_; }

 private:
  IdxOptions options_;
  int64_t n_ = 0, height_ = 0, width_ = 0, channels_ = 1;
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> labels_;
  std::string description_;
  // Last: its initializer loads the files and fills the members above.
  qplug_transforms::Transform transform_;
};

}  // namespace qplug_idx
