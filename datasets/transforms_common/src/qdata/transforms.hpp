// qdata/transforms.hpp - the configurable train/eval transform pipeline
// (random-resized-crop, resize, centre crop, pad + random crop, flip,
// normalize) shared by the image dataset plugins.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "qdata/image.hpp"

#include <qsdk/schema.hpp>

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace qplug_transforms {

/// ImageNet statistics on [0,1] RGB (docs/training.md#data-pipelines).
inline const std::vector<double> kImagenetMean{0.485, 0.456, 0.406};
/// ImageNet standard deviations.
inline const std::vector<double> kImagenetStd{0.229, 0.224, 0.225};
/// CIFAR statistics (docs/training.md#data-pipelines; the reference uses these for CIFAR-10 and -100).
inline const std::vector<double> kCifarMean{0.4914, 0.4822, 0.4465};
/// CIFAR standard deviations.
inline const std::vector<double> kCifarStd{0.2023, 0.1994, 0.2010};

/// `pad_mode`: how `pad` fills the border.
enum class PadMode {
  reflect,  ///< mirror without repeating the edge pixel (numpy/torchvision "reflect")
  zero,     ///< zeros
};

/// The TOML spellings of `pad_mode`.
inline const qsdk::EnumNames<PadMode>& pad_mode_names() {
  static const qsdk::EnumNames<PadMode> names{{"reflect", PadMode::reflect}, {"zero", PadMode::zero}};
  return names;
}

/// Transform options common to the image datasets. A dataset's options struct
/// derives from this and sets its own defaults in its constructor; the fields
/// are exposed in its schema by add_transform_fields().
///
/// Train split: `random_resized_crop` ? RandomResizedCrop(size, scale, ratio)
///   : [Resize(resize)] -> [Pad(pad, pad_mode)] -> RandomCrop(size); then
///   HorizontalFlip(p = 0.5) if `flip`; ToTensor; Normalize(mean, std).
/// Eval split: [Resize(resize)] -> CenterCrop(size); ToTensor; Normalize.
///
/// Example (CIFAR train defaults):
/// ```
/// size = 32
/// random_resized_crop = false
/// resize = 0
/// pad = 4
/// pad_mode = "reflect"
/// flip = true
/// mean = [0.4914, 0.4822, 0.4465]
/// std = [0.2023, 0.1994, 0.2010]
/// ```
struct TransformOptions {
  int64_t size = 224;                               ///< output side; 0 = no crop (keep size)
  bool random_resized_crop = true;                  ///< train: RandomResizedCrop instead of crop
  std::vector<double> scale{0.08, 1.0};             ///< RandomResizedCrop area fraction range
  std::vector<double> ratio{3.0 / 4.0, 4.0 / 3.0};  ///< RandomResizedCrop aspect range
  int64_t resize = 256;                             ///< shorter side before cropping; 0 = none
  int64_t pad = 0;                                  ///< train: border before the random crop
  PadMode pad_mode = PadMode::reflect;              ///< reflect | zero
  bool flip = true;                                 ///< train: random horizontal flip
  std::vector<double> mean = kImagenetMean;         ///< per-channel mean (1 or C values)
  std::vector<double> stddev = kImagenetStd;        ///< per-channel std (TOML key `std`)
};

/// Adds the TransformOptions fields to the schema of `T` (which derives from
/// TransformOptions; Schema::field binds the base's members directly);
/// defaults come from `T{}`.
template <class T>
void add_transform_fields(qsdk::Schema<T>& s) {
  using O = TransformOptions;
  s.field("size", &O::size, "output side after cropping (0 = keep the decoded size)")
      .at_least(0);
  s.field("random_resized_crop", &O::random_resized_crop,
          "train split: RandomResizedCrop(size, scale, ratio) instead of resize + random crop");
  s.field("scale", &O::scale,
          "RandomResizedCrop: range of the crop's area fraction [lo, hi]")
      .range(0.0, 1.0);
  s.field("ratio", &O::ratio,
          "RandomResizedCrop: range of the crop's aspect ratio w/h [lo, hi], sampled log-uniformly")
      .at_least(1e-6);
  s.field("resize", &O::resize,
          "resize the shorter side to this before cropping (eval; train without "
          "random_resized_crop); 0 = no resize")
      .at_least(0);
  s.field("pad", &O::pad, "train split: border added before the random crop (CIFAR: 4)")
      .at_least(0);
  s.field("pad_mode", &O::pad_mode, "border fill for `pad`", pad_mode_names());
  s.field("flip", &O::flip, "train split: random horizontal flip (p = 0.5)");
  s.field("mean", &O::mean,
          "normalization mean on [0,1] pixels, one value or one per channel");
  s.field("std", &O::stddev,
          "normalization standard deviation, one value or one per channel")
      .at_least(1e-12);
}

/// Checks combinations the schema cannot express (list lengths, ordered
/// ranges, mean/std against `channels`); throws qsdk::Error(config).
void check_transform_options(const TransformOptions& options, int64_t channels);

/// The geometric decisions for one sample, drawn from its generator.
struct Plan {
  Box box;             ///< source region to resample
  int64_t out_w = 0;   ///< width after resampling
  int64_t out_h = 0;   ///< height after resampling
  int64_t pad = 0;     ///< border added after resampling
  int64_t crop_x = 0;  ///< crop window in the padded image (may start outside it)
  int64_t crop_y = 0;  ///< crop window top
  int64_t crop_w = 0;  ///< crop width; 0 = whole padded image
  int64_t crop_h = 0;  ///< crop height
  bool flip = false;   ///< mirror horizontally
};

/// A uniform double in [0, 1) from 53 random bits (portable, unlike
/// std::uniform_real_distribution whose algorithm is unspecified).
double uniform01(std::mt19937_64& rng);
/// A uniform integer in [lo, hi).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi);

/// torchvision's RandomResizedCrop.get_params: region (x, y, w, h) of a
/// `width` x `height` image, 10 attempts then a centre-crop fallback.
Box random_resized_crop_box(int64_t width, int64_t height, const std::vector<double>& scale,
                            const std::vector<double>& ratio, std::mt19937_64& rng);

/// The pipeline for one split, immutable and thread-safe.
class Transform {
 public:
  /// Builds the pipeline for the train (`train`) or eval split of images with
  /// `channels` channels; checks the options.
  Transform(TransformOptions options, bool train, int64_t channels);

  /// Draws the plan for a `width` x `height` source image.
  Plan plan(int64_t width, int64_t height, std::mt19937_64& rng) const;
  /// Runs `plan` on `image` (plan.box in `image`'s coordinates): resample,
  /// pad, crop, flip, then a float [C, H, W] tensor normalized.
  torch::Tensor apply(const ImageView& image, const Plan& plan) const;
  /// plan() + apply() for an image held in memory.
  torch::Tensor operator()(const ImageView& image, std::mt19937_64& rng) const {
    return apply(image, plan(image.width, image.height, rng));
  }
  /// Output [C, H, W] for a `width` x `height` source (sizes are fixed unless
  /// size == 0 and resize != 0).
  std::vector<int64_t> output_shape(int64_t width, int64_t height) const;
  /// The options in use.
  const TransformOptions& options() const { return options_; }
  /// Whether this is the train pipeline.
  bool train() const { return train_; }

 private:
  TransformOptions options_;
  bool train_;
  int64_t channels_;
  // value -> normalized float, per channel: (v / 255 - mean) / std.
  std::vector<std::array<float, 256>> lut_;
};

}  // namespace qplug_transforms
