// cifar_dataset.hpp - CIFAR-10 / CIFAR-100 binary versions.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/transforms.hpp"

#include <qsdk/dataset.hpp>
#include <qsdk/schema.hpp>

#include <string>
#include <vector>

namespace qplug_cifar {

/// `variant`: which CIFAR.
enum class CifarVariant { cifar10, cifar100 };
/// `label`: the CIFAR-100 label set.
enum class CifarLabel {
  fine,    ///< 100 classes
  coarse,  ///< 20 superclasses
};

/// The TOML spellings of `variant`.
inline const qsdk::EnumNames<CifarVariant>& variant_names() {
  static const qsdk::EnumNames<CifarVariant> names{{"cifar10", CifarVariant::cifar10},
                                                   {"cifar100", CifarVariant::cifar100}};
  return names;
}
/// The TOML spellings of `label`.
inline const qsdk::EnumNames<CifarLabel>& label_names() {
  static const qsdk::EnumNames<CifarLabel> names{{"fine", CifarLabel::fine}, {"coarse", CifarLabel::coarse}};
  return names;
}

/// Options of `dataset/cifar`. Transform defaults are the reference's CIFAR
/// pipeline (docs/training.md#data-pipelines): train 4-pixel reflect pad + random 32x32 crop + flip,
/// eval none; CIFAR mean/std.
///
/// Example:
/// ```
/// [data]
/// type = "cifar"
/// root = "/data/cifar-100-binary"
/// variant = "cifar100"
/// ```
struct CifarOptions : qplug_transforms::TransformOptions {
  std::string root;                 ///< folder with the .bin files (or its parent)
  CifarVariant variant = CifarVariant::cifar10;  ///< cifar10 | cifar100
  CifarLabel label = CifarLabel::fine;           ///< cifar100: fine (100 classes) | coarse (20)

  CifarOptions() {
    size = 32;
    random_resized_crop = false;
    resize = 0;
    pad = 4;
    pad_mode = qplug_transforms::PadMode::reflect;
    flip = true;
    mean = qplug_transforms::kCifarMean;
    stddev = qplug_transforms::kCifarStd;
  }
  /// The schema bound to these fields.
  static qsdk::Schema<CifarOptions> schema();
};

/// The binary CIFAR files, loaded into memory at construction:
/// cifar10 data_batch_1..5.bin / test_batch.bin (records: label, 3072 pixels),
/// cifar100 train.bin / test.bin (records: coarse, fine, 3072 pixels).
class CifarDataset : public qsdk::Dataset {
 public:
  /// Loads the split chosen by `context.train`; throws qsdk::Error(data) on a
  /// missing or truncated file or an out-of-range label.
  CifarDataset(CifarOptions options, const qsdk::DatasetContext& context);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<int64_t> sample_shape() const override { return transform_.output_shape(32, 32); }
  qsdk::Example get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override { return description_; }

 private:
  CifarOptions options_;
  qplug_transforms::Transform transform_;
  int64_t num_classes_ = 10;
  std::vector<uint8_t> pixels_;  // N x 32 x 32 x 3 (HWC)
  std::vector<int64_t> labels_;
  std::string description_;
};

}  // namespace qplug_cifar
