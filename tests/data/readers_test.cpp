// readers_test.cpp - the dataset plugins (idx, cifar, imagefolder, synthetic)
// loaded with dlopen, on tiny files written in their real formats.
// SPDX-License-Identifier: Apache-2.0
#include "plugin_harness.hpp"
#include "sample_files.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <set>

using qdata_test::make_dataset;
using qtool_samples::TempDir;
using qtool_samples::write_bytes;

namespace {

// Runs f, expects a qsdk::Error(data) with a hint; returns "place | message".
template <class F>
std::string data_error(F&& f) {
  try {
    f();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::data) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
    return e.place() + " | " + e.message();
  }
  ADD_FAILURE() << "no qsdk::Error thrown";
  return {};
}

qsdk::Example get(const std::shared_ptr<qsdk::Dataset>& ds, int64_t i, uint64_t seed = 0) {
  std::mt19937_64 rng(seed);
  return ds->get(i, rng);
}

float norm(double v, double mean, double sd) { return static_cast<float>((v / 255.0 - mean) / sd); }

// 5 images 5 (H) x 6 (W), pixel (n, y, x) = n * 40 + y * 6 + x; labels 3, 1, 4, 1, 5.
void write_idx_split(const TempDir& dir, const std::string& prefix, bool gz, int n = 5) {
  std::vector<uint8_t> pixels, labels;
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 30; ++p) pixels.push_back(static_cast<uint8_t>(i * 40 + p));
    labels.push_back(static_cast<uint8_t>(std::vector<int>{3, 1, 4, 1, 5}[i % 5]));
  }
  auto img = qtool_samples::idx_bytes({n, 5, 6}, pixels);
  auto lab = qtool_samples::idx_bytes({n}, labels);
  const std::string ext = gz ? ".gz" : "";
  write_bytes(dir / (prefix + "-images-idx3-ubyte" + ext), gz ? qtool_samples::gzip(img) : img);
  write_bytes(dir / (prefix + "-labels-idx1-ubyte" + ext), gz ? qtool_samples::gzip(lab) : lab);
}

}  // namespace

TEST(IdxReader, RawAndGzipSplits) {
  TempDir dir("idx");
  write_idx_split(dir, "train", /*gz=*/false);
  write_idx_split(dir, "t10k", /*gz=*/true, 3);
  auto train = make_dataset("idx", "idx", {{"root", dir.path()}}, true);
  auto test = make_dataset("idx", "idx", {{"root", dir.path()}}, false);
  EXPECT_EQ(train->size(), 5);
  EXPECT_EQ(test->size(), 3);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->sample_shape(), (std::vector<int64_t>{1, 5, 6}));
  const auto ex = get(train, 2);
  EXPECT_EQ(ex.label, 4);
  ASSERT_EQ(ex.image.sizes(), (std::vector<int64_t>{1, 5, 6}));
  EXPECT_NEAR(ex.image[0][1][2].item<float>(), norm(2 * 40 + 1 * 6 + 2, 0.1307, 0.3081), 1e-5);
  EXPECT_EQ(get(test, 1).label, 1);
  EXPECT_NEAR(get(test, 1).image[0][4][5].item<float>(), norm(40 + 29, 0.1307, 0.3081), 1e-5);
}

TEST(IdxReader, TruncatedMissingAndBadLabels) {
  TempDir dir("idxbad");
  write_idx_split(dir, "train", false);
  // Cut the image file: the header announces more than is there.
  auto img = qtool_samples::idx_bytes({5, 5, 6}, std::vector<uint8_t>(150, 1));
  write_bytes(dir / "train-images-idx3-ubyte", std::vector<uint8_t>(img.begin(), img.end() - 7));
  std::string err = data_error([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); });
  EXPECT_NE(err.find("train-images-idx3-ubyte"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  // A truncated gzip stream.
  std::filesystem::remove(dir / "train-images-idx3-ubyte");
  auto gz = qtool_samples::gzip(img);
  write_bytes(dir / "train-images-idx3-ubyte.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + gz.size() / 2));
  err = data_error([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); });
  EXPECT_NE(err.find("train-images-idx3-ubyte.gz"), std::string::npos) << err;
  // Wrong magic (labels file given as images).
  write_bytes(dir / "train-images-idx3-ubyte.gz", std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
  err = data_error([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, true); });
  EXPECT_NE(err.find("magic"), std::string::npos) << err;
  // Missing split.
  err = data_error([&] { make_dataset("idx", "idx", {{"root", dir.path()}}, false); });
  EXPECT_NE(err.find("t10k-images-idx3-ubyte"), std::string::npos) << err;
  // Missing root.
  err = data_error([&] { make_dataset("idx", "idx", {{"root", dir / "nope"}}, true); });
  EXPECT_NE(err.find("nope"), std::string::npos) << err;
  // Labels beyond num_classes.
  write_idx_split(dir, "t10k", false);
  err = data_error([&] { make_dataset("idx", "idx", {{"root", dir.path()}, {"num_classes", 4}}, false); });
  EXPECT_NE(err.find("t10k-labels-idx1-ubyte"), std::string::npos) << err;
}

TEST(IdxReader, DebianFashionMnist) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << root << " not installed";
  auto test = make_dataset("idx", "idx", {{"root", root}}, false);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->sample_shape(), (std::vector<int64_t>{1, 28, 28}));
  const auto ex = get(test, 0);
  EXPECT_EQ(ex.label, 9);  // first Fashion-MNIST test image is an ankle boot
  EXPECT_GT(ex.image.max().item<float>(), 2.0f);
}

namespace {

// CIFAR record: label byte(s) then 1024 R, 1024 G, 1024 B; pixel value
// (seed + channel * 50 + y + x) & 255.
std::vector<uint8_t> cifar_records(int n, bool c100, int seed) {
  std::vector<uint8_t> out;
  for (int i = 0; i < n; ++i) {
    if (c100) out.push_back(static_cast<uint8_t>((seed + i) % 20));
    out.push_back(static_cast<uint8_t>((seed + i) % (c100 ? 100 : 10)));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.push_back(static_cast<uint8_t>((seed + i + c * 50 + y + x) & 255));
  }
  return out;
}

}  // namespace

TEST(CifarReader, Cifar10Batches) {
  TempDir dir("c10");
  const std::string sub = dir / "cifar-10-batches-bin";  // the tarball's folder, found below root
  for (int b = 1; b <= 5; ++b)
    write_bytes(sub + "/data_batch_" + std::to_string(b) + ".bin", cifar_records(2, false, b * 10));
  write_bytes(sub + "/test_batch.bin", cifar_records(3, false, 7));
  auto train = make_dataset("cifar", "cifar", {{"root", dir.path()}}, true);
  auto test = make_dataset("cifar", "cifar", {{"root", dir.path()}}, false);
  EXPECT_EQ(train->size(), 10);
  EXPECT_EQ(test->size(), 3);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->sample_shape(), (std::vector<int64_t>{3, 32, 32}));
  // Eval: no augmentation, planar -> CHW, CIFAR normalization.
  const auto ex = get(test, 1);
  EXPECT_EQ(ex.label, 8);
  EXPECT_NEAR(ex.image[2][3][4].item<float>(), norm(8 + 100 + 3 + 4, 0.4465, 0.2010), 1e-5);
  EXPECT_NEAR(ex.image[0][0][0].item<float>(), norm(8, 0.4914, 0.2023), 1e-5);
  EXPECT_EQ(get(train, 3).label, (20 + 1) % 10);  // batch 2, record 1
  // Train: augmented, deterministic for a given generator, varies across generators.
  EXPECT_TRUE(torch::equal(get(train, 0, 5).image, get(train, 0, 5).image));
  bool differs = false;
  for (uint64_t s = 1; s < 8 && !differs; ++s) differs = !torch::equal(get(train, 0, s).image, get(train, 0, 0).image);
  EXPECT_TRUE(differs);
}

TEST(CifarReader, Cifar100FineAndCoarse) {
  TempDir dir("c100");
  write_bytes(dir / "train.bin", cifar_records(4, true, 57));
  write_bytes(dir / "test.bin", cifar_records(2, true, 3));
  auto fine = make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}}, false);
  auto coarse =
      make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}, {"label", "coarse"}}, true);
  EXPECT_EQ(fine->num_classes(), 100);
  EXPECT_EQ(coarse->num_classes(), 20);
  EXPECT_EQ(get(fine, 1).label, 4);
  EXPECT_EQ(get(coarse, 3).label, 60 % 20);
  EXPECT_NEAR(get(fine, 0).image[1][0][1].item<float>(), norm(3 + 50 + 1, 0.4822, 0.1994), 1e-5);
}

// variant, label and pad_mode are enums: an unknown spelling is a config error
// about that key listing the allowed spellings, before any file is read.
TEST(CifarReader, UnknownEnumValuesListTheAllowedValues) {
  TempDir dir("cenum");
  struct Enum {
    std::string plugin, option, bad, allowed;
  };
  for (const Enum& e : {Enum{"cifar", "variant", "cifar-100", "\"cifar10\", \"cifar100\""},
                        Enum{"cifar", "label", "Coarse", "\"fine\", \"coarse\""},
                        Enum{"cifar", "pad_mode", "reflection", "\"reflect\", \"zero\""},
                        Enum{"imagefolder", "pad_mode", "zeros", "\"reflect\", \"zero\""}}) {
    SCOPED_TRACE(e.plugin + "." + e.option);
    const auto* field = qdata_test::dataset_spec(e.plugin, e.plugin).schema.find(e.option);
    ASSERT_NE(field, nullptr);
    EXPECT_EQ(field->type, qsdk::FieldType::enumeration);
    try {
      make_dataset(e.plugin, e.plugin, {{"root", dir.path()}, {e.option, e.bad}}, true);
      ADD_FAILURE() << "no error";
    } catch (const qsdk::Error& err) {
      EXPECT_EQ(err.category(), qsdk::ErrorCategory::config) << err.what();
      EXPECT_EQ(err.place(), e.option) << err.what();
      EXPECT_EQ(err.message(), "\"" + e.bad + "\" is not one of " + e.allowed) << err.what();
      EXPECT_EQ(err.hint(), "allowed values: " + e.allowed) << err.what();
    }
  }
}

TEST(CifarReader, TruncatedAndMissingFiles) {
  TempDir dir("cbad");
  auto rec = cifar_records(3, false, 0);
  for (int b = 1; b <= 5; ++b) write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), rec);
  rec.resize(rec.size() - 100);
  write_bytes(dir / "data_batch_3.bin", rec);
  std::string err = data_error([&] { make_dataset("cifar", "cifar", {{"root", dir.path()}}, true); });
  EXPECT_NE(err.find("data_batch_3.bin"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  err = data_error([&] { make_dataset("cifar", "cifar", {{"root", dir.path()}}, false); });
  EXPECT_NE(err.find("test_batch.bin"), std::string::npos) << err;
  // CIFAR-10 files read as CIFAR-100: the record size does not divide.
  std::filesystem::rename(dir / "data_batch_1.bin", dir / "train.bin");
  err = data_error([&] { make_dataset("cifar", "cifar", {{"root", dir.path()}, {"variant", "cifar100"}}, true); });
  EXPECT_NE(err.find("train.bin"), std::string::npos) << err;
}

namespace {

// root/{train,val}/{cat,dog,emu}/ with JPEGs of varied sizes and a PNG.
void write_image_folder(const TempDir& dir) {
  int seed = 0;
  for (const std::string split : {"train", "val"})
    for (const std::string cls : {"dog", "cat", "emu"}) {
      const std::string d = dir / (split + "/" + cls);
      for (int i = 0; i < 2; ++i) {
        const int w = 180 + 37 * i + seed % 3 * 50, h = 150 + 23 * i;
        write_bytes(d + "/img" + std::to_string(i) + ".JPEG",
                    qtool_samples::encode_jpeg(qtool_samples::smooth_rgb(w, h, ++seed), w, h));
      }
      write_bytes(d + "/sub/extra.png", qtool_samples::encode_png(qtool_samples::smooth_rgb(90, 120, ++seed), 90, 120));
      write_bytes(d + "/notes.txt", {'x'});
    }
}

}  // namespace

TEST(ImageFolderReader, JpegAndPngClassFolders) {
  TempDir dir("if");
  write_image_folder(dir);
  auto train = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true);
  auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
  EXPECT_EQ(train->size(), 9);
  EXPECT_EQ(val->size(), 9);
  EXPECT_EQ(train->num_classes(), 3);
  EXPECT_EQ(train->sample_shape(), (std::vector<int64_t>{3, 224, 224}));
  // Sorted classes: cat = 0, dog = 1, emu = 2; files sorted within a class.
  EXPECT_EQ(get(train, 0).label, 0);
  EXPECT_EQ(get(train, 4).label, 1);
  EXPECT_EQ(get(val, 8).label, 2);
  for (int64_t i = 0; i < 9; ++i) {
    const auto a = get(train, i, 3), b = get(train, i, 3);
    ASSERT_EQ(a.image.sizes(), (std::vector<int64_t>{3, 224, 224}));
    EXPECT_TRUE(torch::equal(a.image, b.image));
    EXPECT_TRUE(torch::isfinite(a.image).all().item<bool>());
    // Normalized ImageNet-style values stay within [-2.2, 2.7].
    EXPECT_GE(a.image.min().item<float>(), -2.2f);
    EXPECT_LE(a.image.max().item<float>(), 2.7f);
    const auto v = get(val, i);
    ASSERT_EQ(v.image.sizes(), (std::vector<int64_t>{3, 224, 224}));
    EXPECT_TRUE(torch::equal(v.image, get(val, i, 99).image));  // eval ignores the generator
  }
  // Smaller output without random_resized_crop: resize + random crop.
  auto small = make_dataset("imagefolder", "imagefolder",
                            {{"root", dir.path()}, {"size", 64}, {"resize", 72}, {"random_resized_crop", false}}, true);
  EXPECT_EQ(get(small, 2).image.sizes(), (std::vector<int64_t>{3, 64, 64}));
}

TEST(ImageFolderReader, CorruptJpegEmptyClassAndMissingRoot) {
  TempDir dir("ifbad");
  write_image_folder(dir);
  // A corrupt JPEG: valid SOI, garbage after it.
  std::vector<uint8_t> bad{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x03, 0x00};
  for (int i = 0; i < 500; ++i) bad.push_back(static_cast<uint8_t>(i * 91 + 7));
  write_bytes(dir / "val/cat/zzz_broken.jpg", bad);
  auto val = make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
  ASSERT_EQ(val->size(), 10);
  // torchvision's order: cat/img0.JPEG, cat/img1.JPEG, cat/zzz_broken.jpg, cat/sub/extra.png.
  std::string err = data_error([&] { get(val, 2); });
  EXPECT_NE(err.find("zzz_broken.jpg"), std::string::npos) << err;
  // An empty class folder shifts labels: refused, naming the folder.
  std::filesystem::create_directories(dir / "train/fox");
  err = data_error([&] { make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, true); });
  EXPECT_NE(err.find("fox"), std::string::npos) << err;
  // Missing root / split.
  err = data_error([&] { make_dataset("imagefolder", "imagefolder", {{"root", dir / "none"}}, true); });
  EXPECT_NE(err.find("none"), std::string::npos) << err;
  err = data_error([&] {
    make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}, {"val_dir", "valid"}}, false);
  });
  EXPECT_NE(err.find("valid"), std::string::npos) << err;
}

TEST(SyntheticReader, DeterministicPerIndexAndSeed) {
  const qsdk::Table opts{{"num_samples", 50}, {"num_classes", 7}, {"channels", 2}, {"height", 5}, {"width", 3}};
  auto a = make_dataset("synthetic", "synthetic", opts, true, 1);
  auto b = make_dataset("synthetic", "synthetic", opts, true, 1);
  auto c = make_dataset("synthetic", "synthetic", opts, true, 2);
  EXPECT_EQ(a->size(), 50);
  EXPECT_EQ(a->num_classes(), 7);
  EXPECT_EQ(a->sample_shape(), (std::vector<int64_t>{2, 5, 3}));
  std::set<int64_t> labels;
  for (int64_t i = 0; i < 50; ++i) {
    const auto x = get(a, i, 1), y = get(b, i, 2);
    EXPECT_TRUE(torch::equal(x.image, y.image));
    EXPECT_EQ(x.label, y.label);
    EXPECT_FALSE(torch::equal(x.image, get(c, i).image));
    labels.insert(x.label);
    EXPECT_GE(x.label, 0);
    EXPECT_LT(x.label, 7);
  }
  EXPECT_GE(labels.size(), 5u);
  EXPECT_FALSE(torch::equal(get(a, 0).image, get(a, 1).image));
}

TEST(DatasetSchemas, RootIsRequiredForFileDatasets) {
  for (const std::string name : {"idx", "cifar", "imagefolder"}) {
    const auto& spec = qdata_test::dataset_spec(name, name);
    const auto* root = spec.schema.find("root");
    ASSERT_NE(root, nullptr) << name;
    EXPECT_TRUE(root->required) << name;
    for (const char* key : {"size", "scale", "ratio", "resize", "pad", "flip", "mean", "std"})
      EXPECT_NE(spec.schema.find(key), nullptr) << name << "." << key;
    EXPECT_NO_THROW(spec.schema.check("dataset/" + name));
  }
  // Per-dataset defaults of the reference (docs/training.md#data-pipelines).
  const auto cifar = qdata_test::dataset_spec("cifar", "cifar").schema.defaults();
  EXPECT_EQ(cifar.at("pad").as_int(), 4);
  EXPECT_EQ(cifar.at("size").as_int(), 32);
  EXPECT_FALSE(cifar.at("random_resized_crop").as_bool());
  EXPECT_NEAR(cifar.at("std").as_list()[0].as_double(), 0.2023, 1e-12);
  const auto inet = qdata_test::dataset_spec("imagefolder", "imagefolder").schema.defaults();
  EXPECT_EQ(inet.at("size").as_int(), 224);
  EXPECT_EQ(inet.at("resize").as_int(), 256);
  EXPECT_TRUE(inet.at("random_resized_crop").as_bool());
  EXPECT_NEAR(inet.at("mean").as_list()[2].as_double(), 0.406, 1e-12);
}
