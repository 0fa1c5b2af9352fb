// cifar_dataset.cpp - see cifar_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "cifar_dataset.hpp"

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
  s.field("variant", &CifarOptions::variant, "which dataset").one_of({"cifar10", "cifar100"});
  s.field("label", &CifarOptions::label, "CIFAR-100 label set: fine (100 classes) or coarse (20)")
      .one_of({"fine", "coarse"});
  qplug_transforms::add_transform_fields(s);
  return s;
}

namespace {
constexpr int64_t kPixels = 32 * 32 * 3;
}

CifarDataset::CifarDataset(CifarOptions options, const qsdk::DatasetContext& context)
    : options_(std::move(options)), transform_(static_cast<const TransformOptions&>(options_), context.train, 3) {
  const bool c100 = options_.variant == "cifar100";
  const int64_t label_bytes = c100 ? 2 : 1;
  const int64_t record = label_bytes + kPixels;
  num_classes_ = c100 ? (options_.label == "coarse" ? 20 : 100) : 10;
  const int64_t label_offset = c100 && options_.label == "fine" ? 1 : 0;

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
    auto check_size = [&](uint64_t size) {
      if (size == 0 || size % static_cast<uint64_t>(record) != 0)
        throw qsdk::Error(qsdk::ErrorCategory::data, path,
                          "file is truncated or not a " + options_.variant + " binary file (" + std::to_string(size) +
                              " bytes is not a positive multiple of the " + std::to_string(record) +
                              "-byte record)",
                          "download the file again; is `variant` right?");
    };
    if (!ec) check_size(on_disk);
    const std::vector<uint8_t> bytes = qplug_transforms::read_file(path);
    check_size(bytes.size());  // the file may have changed since
    const int64_t n = static_cast<int64_t>(bytes.size()) / record;
    const size_t base = labels_.size();
    labels_.resize(base + n);
    pixels_.resize((base + n) * kPixels);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* rec = bytes.data() + i * record;
      // Every label byte is checked, also the CIFAR-100 label set not in
      // use: an out-of-range one means the record is not what it claims.
      for (int64_t b = 0; b < label_bytes; ++b) {
        const int64_t limit = c100 ? (b == 0 ? 20 : 100) : 10;
        if (rec[b] >= limit)
          throw qsdk::Error(qsdk::ErrorCategory::data, path,
                            "record " + std::to_string(i) + " has " +
                                (c100 ? (b == 0 ? "coarse label " : "fine label ") : "label ") +
                                std::to_string(rec[b]) + ", outside [0, " + std::to_string(limit) + ")",
                            "the file is corrupt or `variant` is wrong (CIFAR-100 records have two label bytes)");
      }
      const int64_t label = rec[label_offset];
      labels_[base + i] = label;
      // Stored planar (1024 R, 1024 G, 1024 B); keep interleaved for the transforms.
      const uint8_t* plane = rec + label_bytes;
      uint8_t* dst = pixels_.data() + (base + i) * kPixels;
      for (int64_t p = 0; p < 1024; ++p) {
        dst[3 * p] = plane[p];
        dst[3 * p + 1] = plane[1024 + p];
        dst[3 * p + 2] = plane[2048 + p];
      }
    }
  }
  description_ = options_.variant + " " + (context.train ? "train" : "test") + " (" + dir +
                 "): " + std::to_string(labels_.size()) + " images, " + std::to_string(num_classes_) + " classes";
}

qsdk::Example CifarDataset::get(int64_t index, std::mt19937_64& rng) const {
  if (index < 0 || index >= size()) throw std::out_of_range("cifar: index " + std::to_string(index));
  qplug_transforms::ImageView view{pixels_.data() + index * kPixels, 32, 32, 3, 32 * 3};
  qsdk::Example ex;
  ex.image = transform_(view, rng);
  ex.label = labels_[static_cast<size_t>(index)];
  return ex;
}

}  // namespace qplug_cifar
