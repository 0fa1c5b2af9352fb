// idx_dataset.cpp - see idx_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "idx_dataset.hpp"

#include "idx_file.hpp"
#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <filesystem>

namespace qplug_idx {
namespace fs = std::filesystem;
using qplug_transforms::TransformOptions;

qsdk::Schema<IdxOptions> IdxOptions::schema() {
  qsdk::Schema<IdxOptions> s("MNIST-style IDX files (MNIST, Fashion-MNIST), raw or gzip");
  s.field("root", &IdxOptions::root, "folder holding the IDX files").required().path();
  s.field("train_images", &IdxOptions::train_images, "training images file (name, .gz tried too)");
  s.field("train_labels", &IdxOptions::train_labels, "training labels file");
  s.field("test_images", &IdxOptions::test_images, "test images file");
  s.field("test_labels", &IdxOptions::test_labels, "test labels file");
  s.field("num_classes", &IdxOptions::num_classes, "number of classes").at_least(1);
  s.field("max_bytes", &IdxOptions::max_bytes,
          "largest payload an IDX file may announce or decompress to (corrupt headers and gzip bombs stop here)")
      .at_least(1);
  qplug_transforms::add_transform_fields(s);
  return s;
}

namespace {

// `name`, `name.gz`, and the variant with '.' before "idx" that some mirrors use.
std::string locate(const std::string& root, const std::string& name) {
  std::vector<std::string> names{name, name + ".gz"};
  const auto pos = name.find("-idx");
  if (pos != std::string::npos) {
    std::string dotted = name;
    dotted[pos] = '.';
    names.push_back(dotted);
    names.push_back(dotted + ".gz");
  }
  std::string found = qplug_transforms::find_first(root, names);
  if (found.empty())
    throw qsdk::Error(qsdk::ErrorCategory::data, (fs::path(root) / name).string(),
                      "IDX file not found (also tried .gz)", "check `root` and the *_images / *_labels options");
  return found;
}

int64_t infer_channels(const IdxArray& images) { return images.dims.size() == 4 ? images.dims[3] : 1; }

}  // namespace

IdxDataset::IdxDataset(IdxOptions options, const qsdk::DatasetContext& context)
    : options_(std::move(options)), transform_([&]() -> qplug_transforms::Transform {
        qplug_transforms::require_directory(options_.root, "dataset root",
                                            "set `root` to the folder holding the IDX files");
        const std::string images_path =
            locate(options_.root, context.train ? options_.train_images : options_.test_images);
        const std::string labels_path =
            locate(options_.root, context.train ? options_.train_labels : options_.test_labels);
        const auto max_bytes = static_cast<uint64_t>(options_.max_bytes);
        IdxArray images = read_idx(images_path, 0, max_bytes);
        if (images.dims.size() != 3 && images.dims.size() != 4)
          throw qsdk::Error(qsdk::ErrorCategory::data, images_path,
                            "image file has " + std::to_string(images.dims.size()) +
                                " dimension(s), expected 3 [N, H, W] or 4 [N, H, W, C]",
                            "are the image and label file names swapped?");
        IdxArray labels = read_idx(labels_path, 1, max_bytes);
        if (labels.dims[0] != images.dims[0])
          throw qsdk::Error(qsdk::ErrorCategory::data, labels_path,
                            std::to_string(labels.dims[0]) + " labels for " + std::to_string(images.dims[0]) +
                                " images in " + images_path,
                            "the two files do not belong together");
        for (size_t i = 0; i < labels.data.size(); ++i)
          if (labels.data[i] >= options_.num_classes)
            throw qsdk::Error(qsdk::ErrorCategory::data, labels_path,
                              "label " + std::to_string(labels.data[i]) + " of sample " + std::to_string(i) +
                                  " is not below num_classes = " + std::to_string(options_.num_classes),
                              "raise num_classes");
        n_ = images.dims[0];
        height_ = images.dims[1];
        width_ = images.dims[2];
        channels_ = infer_channels(images);
        pixels_ = std::move(images.data);
        labels_ = std::move(labels.data);
        description_ = "idx " + images_path + ": " + std::to_string(n_) + " images " + std::to_string(height_) + "x" +
                       std::to_string(width_) + "x" + std::to_string(channels_) + ", " +
                       std::to_string(options_.num_classes) + " classes";
        return qplug_transforms::Transform(static_cast<const TransformOptions&>(options_), context.train, channels_);
      }()) {}

qsdk::Example IdxDataset::get(int64_t index, std::mt19937_64& rng) const {
  if (index < 0 || index >= n_) throw std::out_of_range("idx: index " + std::to_string(index));
  const int64_t bytes = height_ * width_ * channels_;
  qplug_transforms::ImageView view{pixels_.data() + index * bytes, width_, height_, channels_, width_ * channels_};
  qsdk::Example ex;
  ex.image = transform_(view, rng);
  ex.label = labels_[static_cast<size_t>(index)];
  return ex;
}

}  // namespace qplug_idx
