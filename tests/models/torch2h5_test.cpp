// tools/torch2h5.py -> HDF5 -> torch_resnet: same logits as the PyTorch model.
#include <torch/torch.h>

#include "test_support.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdlib>
#include <filesystem>
#include <map>

namespace {

namespace fs = std::filesystem;

int run(const std::string& cmd) { return std::system(cmd.c_str()); }

bool python_has_torch() { return run("/usr/bin/python3 -c 'import torch, h5py' > /dev/null 2>&1") == 0; }

// Reads every dataset under `group` of an HDF5 file, keyed by dotted path.
struct H5Reader {
  hid_t file = -1;
  explicit H5Reader(const std::string& path) { file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }
  ~H5Reader() {
    if (file >= 0) H5Fclose(file);
  }
  torch::Tensor dataset(const std::string& name) const {
    hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
    if (d < 0) return {};
    hid_t space = H5Dget_space(d);
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    hid_t type = H5Dget_type(d);
    const bool is_float = H5Tget_class(type) == H5T_FLOAT;
    torch::Tensor t = torch::empty(shape, is_float ? torch::kFloat32 : torch::kInt64);
    H5Dread(d, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr());
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(d);
    return t;
  }
  std::map<std::string, torch::Tensor> group(const std::string& root) const {
    struct Ctx {
      const H5Reader* self;
      std::string root;
      std::map<std::string, torch::Tensor> out;
    } ctx{this, root, {}};
    hid_t g = H5Gopen2(file, root.c_str(), H5P_DEFAULT);
    if (g < 0) return {};
    H5Ovisit(
        g, H5_INDEX_NAME, H5_ITER_NATIVE,
        [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
          auto* c = static_cast<Ctx*>(data);
          if (info->type != H5O_TYPE_DATASET) return 0;
          std::string dotted = name;
          for (auto& ch : dotted)
            if (ch == '/') ch = '.';
          c->out[dotted] = c->self->dataset(c->root + "/" + name);
          return 0;
        },
        &ctx);
    H5Gclose(g);
    return ctx.out;
  }
  // Read the way qhost's checkpoint reader does (native C string, variable length).
  std::string string_attribute(const std::string& object, const std::string& name) const {
    hid_t a = H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return "<missing>";
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    char* value = nullptr;
    const bool ok = H5Aread(a, mem, &value) >= 0;
    std::string out = ok && value ? value : "<unreadable>";
    if (value) H5free_memory(value);
    H5Tclose(mem);
    H5Aclose(a);
    return out;
  }
  int64_t int_attribute(const std::string& object, const std::string& name) const {
    hid_t a = H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    int64_t v = -1;
    H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    return v;
  }
};

class Torch2H5 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!python_has_torch()) GTEST_SKIP() << "/usr/bin/python3 lacks torch or h5py";
    dir_ = fs::temp_directory_path() / ("qtool_torch2h5_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    ASSERT_EQ(run("/usr/bin/python3 " QTOOL_MODELS_TEST_DIR "/tv_resnet18_fixture.py make " + dir_.string()), 0);
    ASSERT_EQ(run("/usr/bin/python3 " QTOOL_MODELS_TOOLS_DIR "/torch2h5.py " + (dir_ / "resnet18.pth").string() + " " +
                  (dir_ / "resnet18.h5").string() + " > /dev/null"),
              0);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(Torch2H5, TorchResNetLoadsConvertedWeightsAndMatchesLogits) {
  H5Reader h5((dir_ / "resnet18.h5").string());
  ASSERT_GE(h5.file, 0);
  EXPECT_EQ(h5.int_attribute("/meta", "format_version"), 1);
  // The rest of the metadata qhost's reader requires, so `init_from` accepts the file.
  EXPECT_EQ(h5.int_attribute("/meta", "epoch"), 0);
  EXPECT_EQ(h5.string_attribute("/meta", "qtool_version"), "converted by tools/torch2h5.py");
  for (const char* key : {"sdk_version", "torch_version", "resolved_toml", "optimizer_type", "rng_text"})
    EXPECT_NE(h5.string_attribute("/meta", key).rfind("<", 0), 0u) << key;
  auto tensors = h5.group("/model");
  ASSERT_EQ(tensors.size(), 122u);
  ASSERT_TRUE(tensors.count("layer2.0.downsample.0.weight"));  // 'module.' stripped, dots -> groups
  EXPECT_EQ(tensors.at("layer1.0.bn1.num_batches_tracked").scalar_type(), torch::kInt64);

  qtest::QuantizerLog log;
  qhost::LayerFactory layers(qsdk::Table{}, log.maker(), 2, 64);
  auto model = qtest::make_model("torch_resnet", qsdk::Table{{"depth", 18}}, layers, 10, {3, 64, 64});
  {
    torch::NoGradGuard ng;
    size_t loaded = 0;
    auto load = [&](const std::string& name, torch::Tensor& target) {
      auto it = tensors.find(name);
      ASSERT_NE(it, tensors.end()) << name;
      ASSERT_EQ(it->second.sizes(), target.sizes()) << name;
      target.copy_(it->second);
      ++loaded;
    };
    for (auto& p : model->named_parameters()) load(p.key(), p.value());
    for (auto& b : model->named_buffers()) load(b.key(), b.value());
    EXPECT_EQ(loaded, tensors.size());
  }
  H5Reader io((dir_ / "io.h5").string());
  auto x = io.dataset("/input");
  auto expected = io.dataset("/logits");
  model->eval();
  torch::NoGradGuard ng;
  auto y = model->forward(x);
  ASSERT_EQ(y.sizes(), expected.sizes());
  const double diff = (y - expected).abs().max().item<double>();
  RecordProperty("max_abs_diff", std::to_string(diff));
  EXPECT_LT(diff, 1e-4);
}

TEST_F(Torch2H5, H5ToTorchRoundTripsTheStateDict) {
  ASSERT_EQ(run("/usr/bin/python3 " QTOOL_MODELS_TOOLS_DIR "/h5totorch.py " + (dir_ / "resnet18.h5").string() + " " +
                (dir_ / "back.pth").string() + " --wrap > /dev/null"),
            0);
  EXPECT_EQ(run("/usr/bin/python3 " QTOOL_MODELS_TEST_DIR "/tv_resnet18_fixture.py compare " +
                (dir_ / "resnet18.pth").string() + " " + (dir_ / "back.pth").string()),
            0);
}

TEST_F(Torch2H5, FlexibleMappingLoadsIntoResnetPlugin) {
  ASSERT_EQ(run("/usr/bin/python3 " QTOOL_MODELS_TOOLS_DIR "/torch2h5.py " + (dir_ / "resnet18.pth").string() + " " +
                (dir_ / "flex.h5").string() + " --map torchvision-to-flexible > /dev/null"),
            0);
  auto tensors = H5Reader((dir_ / "flex.h5").string()).group("/model");
  qtest::QuantizerLog log;
  qhost::LayerFactory layers(qsdk::Table{}, log.maker(), 2, 64);
  auto model = qtest::make_model("resnet", qsdk::Table{{"depth", 18}, {"stem", "imagenet"}}, layers, 10, {3, 64, 64});
  {
    torch::NoGradGuard ng;
    for (auto& p : model->named_parameters()) {
      ASSERT_TRUE(tensors.count(p.key())) << p.key();
      p.value().copy_(tensors.at(p.key()));
    }
    for (auto& b : model->named_buffers()) {
      ASSERT_TRUE(tensors.count(b.key())) << b.key();
      b.value().copy_(tensors.at(b.key()));
    }
  }
  H5Reader io((dir_ / "io.h5").string());
  model->eval();
  torch::NoGradGuard ng;
  EXPECT_LT((model->forward(io.dataset("/input")) - io.dataset("/logits")).abs().max().item<double>(), 1e-4);
}

}  // namespace
