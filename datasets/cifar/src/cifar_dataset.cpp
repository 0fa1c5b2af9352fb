// cifar_dataset.cpp - see cifar_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "cifar_dataset.hpp"

#include "cifar_records.hpp"

#include "qdata/file_io.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <filesystem>

namespace qplug_cifar {
namespace fs = std::filesystem;
using qplug_transforms::TransformOptions;

qsdk::Schema<CifarOptions> CifarOptions::schema() {
  qsdk::Schema<CifarOptions> s("CIFAR-10 / CIFAR-100 binary version");
  s.field("root", &CifarOptions::root, "folder holding the .bin files (or cifar-10-batches-bin / cifar-100-binary)")
      .required()
      .path();
  s.field("variant", &CifarOptions::variant, "which dataset", variant_names());
  s.field("label", &CifarOptions::label, "CIFAR-100 label set: fine (100 classes) or coarse (20)", label_names());
  qplug_transforms::add_transform_fields(s);
  return s;
}

CifarDataset::CifarDataset(CifarOptions options, const qsdk::DatasetContext& context)
    : options_(std::move(options)), transform_(static_cast<const TransformOptions&>(options_), context.train, 3) {
  const bool c100 = options_.variant == CifarVariant::cifar100;
  const CifarFormat format{c100, c100 && options_.label == CifarLabel::coarse};
  num_classes_ = c100 ? (format.coarse ? 20 : 100) : 10;

  std::vector<std::string> names;
  if (c100) {
    names = {context.train ? "train.bin" : "test.bin"};
  } else if (context.train) {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    names = {"test_batch.bin"};
  }
  qplug_transforms::require_directory(options_.root, "dataset root",
                                      "set `root` to the folder with the CIFAR .bin files");
  // Accept the folder the official tarball extracts to, below root.
  std::string dir = options_.root;
  const std::string sub = c100 ? "cifar-100-binary" : "cifar-10-batches-bin";
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / names[0], ec) && fs::is_directory(fs::path(dir) / sub, ec))
    dir = (fs::path(dir) / sub).string();

  const std::string hint =
      c100 ? "download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz and extract it into root"
           : "download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and extract it into root";
  for (const auto& name : names) {
    const std::string path = (fs::path(dir) / name).string();
    if (!fs::is_regular_file(path, ec))
      throw qsdk::Error(qsdk::ErrorCategory::data, path, "CIFAR file not found", hint);
    // The size decides first (from the directory entry, before reading): a
    // half-copied file ends inside a record.
    const auto on_disk = fs::file_size(path, ec);
    if (!ec) check_cifar_size(on_disk, format, path);
    const std::vector<uint8_t> bytes = qplug_transforms::read_file(path);
    // Checks the size again: the file may have changed since.
    decode_cifar_records(bytes.data(), bytes.size(), format, path, labels_, pixels_);
  }
  description_ = qsdk::enum_spelling(variant_names(), options_.variant) + " " + (context.train ? "train" : "test") +
                 " (" + dir + "): " + std::to_string(labels_.size()) + " images, " + std::to_string(num_classes_) +
                 " classes";
}

qsdk::Example CifarDataset::get(int64_t index, std::mt19937_64& rng) const {
  if (index < 0 || index >= size()) throw std::out_of_range("cifar: index " + std::to_string(index));
  qplug_transforms::ImageView view{pixels_.data() + index * kCifarPixels, 32, 32, 3, 32 * 3};
  qsdk::Example ex;
  ex.image = transform_(view, rng);
  ex.label = labels_[static_cast<size_t>(index)];
  return ex;
}

}  // namespace qplug_cifar
