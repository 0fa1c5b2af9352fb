// imagefolder_dataset.cpp - see imagefolder_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "imagefolder_dataset.hpp"

#include "qdata/file_io.hpp"
#include "qdata/image_decode.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace qplug_imagefolder {
namespace fs = std::filesystem;
using qplug_transforms::TransformOptions;

qsdk::Schema<ImageFolderOptions> ImageFolderOptions::schema() {
  qsdk::Schema<ImageFolderOptions> s("ImageNet-layout image folders (root/train/<class>/, root/val/<class>/)");
  s.field("root", &ImageFolderOptions::root, "folder holding the split folders").required().path();
  s.field("train_dir", &ImageFolderOptions::train_dir, "training split folder under root");
  s.field("val_dir", &ImageFolderOptions::val_dir, "evaluation split folder under root");
  s.field("dct_scaling", &ImageFolderOptions::dct_scaling,
          "JPEG: downscale by 2/4/8 in the DCT domain when the crop is that much larger than "
          "the output (faster, slightly different pixels)");
  qplug_transforms::add_transform_fields(s);
  return s;
}

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::vector<std::string> sorted_subdirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec))
    if (e.is_directory(ec)) out.push_back(e.path().filename().string());
  if (ec) throw qsdk::Error(qsdk::ErrorCategory::data, dir, "cannot list folder: " + ec.message(), "check permissions");
  std::sort(out.begin(), out.end());
  return out;
}

// torchvision's order: sorted(os.walk(dir)) visits folders by path string,
// and each folder's files sorted by name.
void collect_images(const fs::path& dir, std::vector<std::string>& out) {
  std::vector<std::pair<std::string, std::string>> found;  // (folder, file name)
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && is_image_file(it->path()))
      found.emplace_back(it->path().parent_path().string(), it->path().filename().string());
  }
  if (ec)
    throw qsdk::Error(qsdk::ErrorCategory::data, dir.string(), "cannot list folder: " + ec.message(),
                      "check permissions");
  std::sort(found.begin(), found.end());
  for (const auto& [folder, name] : found) out.push_back((fs::path(folder) / name).string());
}

}  // namespace

ImageFolderDataset::ImageFolderDataset(ImageFolderOptions options, const qsdk::DatasetContext& context)
    : options_(std::move(options)),
      split_dir_((fs::path(options_.root) / (context.train ? options_.train_dir : options_.val_dir)).string()),
      transform_(static_cast<const TransformOptions&>(options_), context.train, 3) {
  if (options_.size <= 0)
    qsdk::config_error("size", "imagefolder needs a fixed output size (images differ in size)", "set size, e.g. 224");
  qplug_transforms::require_directory(options_.root, "dataset root",
                                      "set `root` to the folder holding train/ and val/");
  qplug_transforms::require_directory(
      split_dir_, "split folder",
      "expected root/" + options_.train_dir + "/<class>/ and root/" + options_.val_dir + "/<class>/ (ImageNet layout)");
  const std::string train_dir = (fs::path(options_.root) / options_.train_dir).string();
  std::error_code ec;
  classes_ = sorted_subdirs(fs::is_directory(train_dir, ec) ? train_dir : split_dir_);
  if (classes_.empty())
    throw qsdk::Error(qsdk::ErrorCategory::data, split_dir_, "no class folders found",
                      "expected one sub-folder per class holding its images");
  for (const auto& name : sorted_subdirs(split_dir_)) {
    if (!std::binary_search(classes_.begin(), classes_.end(), name))
      throw qsdk::Error(qsdk::ErrorCategory::data, (fs::path(split_dir_) / name).string(),
                        "class folder has no counterpart in " + train_dir,
                        "both splits must use the same class folder names");
  }
  for (size_t label = 0; label < classes_.size(); ++label) {
    const fs::path dir = fs::path(split_dir_) / classes_[label];
    if (!fs::is_directory(dir, ec)) continue;  // eval split may lack a class
    const size_t before = files_.size();
    collect_images(dir, files_);
    if (files_.size() == before)
      throw qsdk::Error(qsdk::ErrorCategory::data, dir.string(), "class folder holds no .jpg/.jpeg/.png image",
                        "add images or remove the folder (it would shift every label)");
    labels_.resize(files_.size(), static_cast<int32_t>(label));
  }
}

std::vector<int64_t> ImageFolderDataset::sample_shape() const { return {3, options_.size, options_.size}; }

qsdk::Example ImageFolderDataset::get(int64_t index, std::mt19937_64& rng) const {
  const std::string& file = files_.at(static_cast<size_t>(index));
  try {
    const std::vector<uint8_t> bytes = qplug_transforms::read_file(file);
    const auto info = qplug_transforms::read_image_info(bytes, file);
    qplug_transforms::Plan plan = transform_.plan(info.width, info.height, rng);
    auto region = qplug_transforms::decode_region(bytes, file, plan.box, plan.out_w, plan.out_h, options_.dct_scaling);
    plan.box = region.box;
    qsdk::Example ex;
    ex.image = transform_.apply(region.image.view(), plan);
    ex.label = labels_[static_cast<size_t>(index)];
    return ex;
  } catch (const qsdk::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::data, file, std::string("cannot load image: ") + e.what(),
                      "re-create the file or remove it from the dataset folder");
  }
}

std::string ImageFolderDataset::describe() const {
  return "imagefolder " + split_dir_ + ": " + std::to_string(files_.size()) + " images, " +
         std::to_string(classes_.size()) + " classes";
}

}  // namespace qplug_imagefolder
