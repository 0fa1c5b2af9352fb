// imagefolder_dataset.cpp - see imagefolder_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "imagefolder_dataset.hpp"

#include "qdata/file_io.hpp"
#include "qdata/image_decode.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

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
  s.field("max_image_pixels", &ImageFolderOptions::max_image_pixels,
          "images with more pixels (width x height, read from the header before decoding) are a data error; "
          "default PIL's decompression-bomb threshold")
      .at_least(1);
  s.field("allow_truncated_images", &ImageFolderOptions::allow_truncated_images,
          "decode JPEGs whose data ends early (missing part grey, as the reference's PIL "
          "LOAD_TRUNCATED_IMAGES) instead of a data error");
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

// A real folder, whatever path (symlinks) leads to it.
struct FolderId {
  dev_t dev;
  ino_t ino;
  bool operator<(const FolderId& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
  bool operator==(const FolderId& o) const { return dev == o.dev && ino == o.ino; }
};

struct Walk {
  std::vector<std::pair<std::string, std::string>> found;  // (folder, file name)
  std::set<FolderId> listed;                               // every folder entered
  std::vector<std::pair<FolderId, std::string>> inside;    // the folders the walk is in now
  int64_t skipped = 0;                                     // links to folders listed before
};

// Depth-first in name order, so which of two links to one folder is kept
// does not depend on the order the file system lists them in.
void walk_folder(const fs::path& dir, Walk& w) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
  if (ec)
    throw qsdk::Error(qsdk::ErrorCategory::data, dir.string(), "cannot list folder: " + ec.message(),
                      "check permissions");
  std::sort(entries.begin(), entries.end());
  for (const auto& entry : entries) {
    struct stat st;
    if (::stat(entry.c_str(), &st) != 0) continue;  // dangling link: not an image
    if (S_ISREG(st.st_mode)) {
      if (is_image_file(entry)) w.found.emplace_back(dir.string(), entry.filename().string());
      continue;
    }
    if (!S_ISDIR(st.st_mode)) continue;
    const FolderId id{st.st_dev, st.st_ino};
    for (const auto& [open_id, open_path] : w.inside)
      if (open_id == id)
        throw qsdk::Error(qsdk::ErrorCategory::data, entry.string(),
                          "symlink cycle: this folder leads back to " + open_path +
                              ", which contains it (the walk would never end)",
                          "remove the link or point it outside the class folder");
    if (!w.listed.insert(id).second) {
      ++w.skipped;  // a second way into a folder already listed
      continue;
    }
    w.inside.emplace_back(id, entry.string());
    walk_folder(entry, w);
    w.inside.pop_back();
  }
}

// torchvision's order: sorted(os.walk(dir)) visits folders by path string,
// and each folder's files sorted by name.
int64_t collect_images(const fs::path& dir, std::vector<std::string>& out) {
  Walk w;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    throw qsdk::Error(qsdk::ErrorCategory::data, dir.string(), std::string("cannot list folder: ") + std::strerror(errno),
                      "check permissions");
  w.listed.insert({st.st_dev, st.st_ino});
  w.inside.emplace_back(FolderId{st.st_dev, st.st_ino}, dir.string());
  walk_folder(dir, w);
  std::sort(w.found.begin(), w.found.end());
  for (const auto& [folder, name] : w.found) out.push_back((fs::path(folder) / name).string());
  return w.skipped;
}

}  // namespace

ImageFolderDataset::ImageFolderDataset(ImageFolderOptions options, const qsdk::DatasetContext& context)
    : options_(std::move(options)),
      split_dir_((fs::path(options_.root) / (context.train ? options_.train_dir : options_.val_dir)).string()),
      transform_(static_cast<const TransformOptions&>(options_), context.train, 3) {
  limits_.max_pixels = options_.max_image_pixels;
  limits_.allow_truncated = options_.allow_truncated_images;
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
    skipped_links_ += collect_images(dir, files_);
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
    const auto info = qplug_transforms::read_image_info(bytes, file, limits_);
    qplug_transforms::Plan plan = transform_.plan(info.width, info.height, rng);
    auto region = qplug_transforms::decode_region(bytes, file, plan.box, plan.out_w, plan.out_h, options_.dct_scaling,
                                                  limits_);
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
  std::string text = "imagefolder " + split_dir_ + ": " + std::to_string(files_.size()) + " images, " +
                     std::to_string(classes_.size()) + " classes";
  if (skipped_links_ > 0)
    text += " (" + std::to_string(skipped_links_) + " symlinked folder(s) skipped: already listed via another path)";
  return text;
}

}  // namespace qplug_imagefolder
