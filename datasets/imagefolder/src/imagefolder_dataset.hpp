// imagefolder_dataset.hpp - ImageNet-layout folders of JPEG/PNG images.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image_decode.hpp"
#include "qdata/transforms.hpp"

#include <qsdk/dataset.hpp>
#include <qsdk/schema.hpp>

#include <string>
#include <vector>

namespace qplug_imagefolder {

/// Options of `dataset/imagefolder`. Transform defaults are the reference's
/// ImageNet pipeline (docs/training.md#data-pipelines): train RandomResizedCrop(224, (0.08, 1),
/// (3/4, 4/3)) + flip; eval Resize(256) + CenterCrop(224); ImageNet mean/std.
///
/// Example:
/// ```
/// [data]
/// type = "imagefolder"
/// root = "/data/imagenet"   # holds train/<class>/*.JPEG and val/<class>/*.JPEG
/// ```
struct ImageFolderOptions : qplug_transforms::TransformOptions {
  std::string root;                 ///< folder holding the split folders
  std::string train_dir = "train";  ///< training split folder under root
  std::string val_dir = "val";      ///< evaluation split folder under root
  bool dct_scaling = true;          ///< let the JPEG decoder downscale by 2/4/8 when the crop allows
  /// Images with more pixels (from the header, before decoding) are a data
  /// error; default PIL's decompression-bomb threshold.
  int64_t max_image_pixels = qplug_transforms::kDefaultMaxImagePixels;
  /// Decode JPEGs that end early (missing part grey) as the reference's PIL
  /// LOAD_TRUNCATED_IMAGES does, instead of a data error.
  bool allow_truncated_images = false;

  ImageFolderOptions() = default;
  /// The schema bound to these fields.
  static qsdk::Schema<ImageFolderOptions> schema();
};

/// Images under `root/<split>/<class>/...` (recursively), classes sorted by
/// name -> label index, files sorted, extensions .jpg/.jpeg/.png (any case).
/// The class list comes from the train folder when it exists, so both splits
/// agree on labels.
///
/// Symlinked folders are followed, each real folder (st_dev, st_ino) at most
/// once per class: a link back to a folder the walk is inside (a cycle, e.g.
/// `loop -> .`) is a data error naming the link, since following it would
/// never end; a second link to a folder already listed elsewhere in the class
/// is skipped, so its images are not listed twice (describe() counts them).
class ImageFolderDataset : public qsdk::Dataset {
 public:
  /// Scans the split chosen by `context.train`; throws qsdk::Error(data) on a
  /// missing folder, an empty class folder or an unknown class.
  ImageFolderDataset(ImageFolderOptions options, const qsdk::DatasetContext& context);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<int64_t> sample_shape() const override;
  qsdk::Example get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;

  /// Class names in label order.
  const std::vector<std::string>& classes() const { return classes_; }
  /// Path of sample `index`.
  const std::string& path(int64_t index) const { return files_.at(static_cast<size_t>(index)); }

 private:
  ImageFolderOptions options_;
  std::string split_dir_;
  qplug_transforms::Transform transform_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;
  std::vector<int32_t> labels_;
  qplug_transforms::DecodeLimits limits_;
  int64_t skipped_links_ = 0;  // links to folders already listed
};

}  // namespace qplug_imagefolder
