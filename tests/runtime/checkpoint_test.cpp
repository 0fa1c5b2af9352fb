// HDF5 checkpoints: round trip with dtypes, errors naming file and entry,
// crash safety of the atomic write, lenient initialisation.
#include "checkpoint.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <hdf5.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

namespace fs = std::filesystem;
using namespace qhost;

namespace {

// A module with nested names, a float parameter, an int32 and an int64 buffer.
struct InnerImpl : torch::nn::Module {
  InnerImpl() {
    weight = register_parameter("weight", torch::randn({3, 2, 1, 1}));
    clip = register_parameter("clip", torch::ones({1}));
    codec = register_buffer("codec_index", torch::arange(4, torch::kInt32));
  }
  torch::Tensor weight, clip, codec;
};
TORCH_MODULE(Inner);

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    conv = register_module("conv", Inner());
    bn = register_module("bn", torch::nn::BatchNorm2d(3));
  }
  Inner conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Tiny);

// `stable`: the same folder in a death-test child (which re-runs the test in a new process).
std::string temp_dir(const std::string& name, bool stable = false) {
  auto dir = fs::temp_directory_path() /
             ("qtool_ckpt_" + name + (stable ? std::string() : "_" + std::to_string(::getpid())));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

CheckpointData sample(const torch::nn::Module& m) {
  CheckpointData d;
  d.meta.epoch = 3;
  d.meta.step = 120;
  d.meta.best_top1 = 91.25;
  d.meta.resolved_toml = "[experiment]\nname = \"x\"\n";
  d.meta.optimizer_type = "sgd";
  d.meta.rng_text = "12345 678";
  auto rng = at::detail::getDefaultCPUGenerator().get_state();
  d.meta.torch_rng_state.assign(rng.data_ptr<uint8_t>(), rng.data_ptr<uint8_t>() + rng.numel());
  d.model = module_state(m);
  d.optimizer.emplace_back("conv.weight/momentum_buffer", torch::randn({3, 2, 1, 1}));
  d.metrics_jsonl = "{\"epoch\": 0}\n";
  return d;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::checkpoint) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no qsdk::Error thrown";
  return "";
}

}  // namespace

TEST(Checkpoint, RoundTripKeepsValuesDtypesAndMeta) {
  torch::manual_seed(1);
  Tiny a;
  // Make BN state non-trivial.
  a->train();
  a->bn->forward(torch::randn({4, 3, 2, 2}));
  const auto dir = temp_dir("roundtrip");
  const auto path = dir + "/last.h5";
  const auto data = sample(*a);
  write_checkpoint(path, data);
  ASSERT_TRUE(fs::exists(path));

  const auto back = read_checkpoint(path);
  EXPECT_EQ(back.meta.format_version, kCheckpointFormatVersion);
  EXPECT_EQ(back.meta.epoch, 3);
  EXPECT_EQ(back.meta.step, 120);
  EXPECT_DOUBLE_EQ(back.meta.best_top1, 91.25);
  EXPECT_EQ(back.meta.resolved_toml, data.meta.resolved_toml);
  EXPECT_EQ(back.meta.rng_text, "12345 678");
  EXPECT_EQ(back.meta.torch_rng_state, data.meta.torch_rng_state);
  EXPECT_EQ(back.meta.qtool_version, QTOOL_VERSION);
  EXPECT_FALSE(back.meta.sdk_version.empty());
  EXPECT_EQ(back.metrics_jsonl, data.metrics_jsonl);
  ASSERT_EQ(back.optimizer.size(), 1u);
  EXPECT_EQ(back.optimizer[0].first, "conv.weight/momentum_buffer");
  EXPECT_TRUE(back.optimizer[0].second.equal(data.optimizer[0].second));

  std::map<std::string, torch::Tensor> stored(back.model.begin(), back.model.end());
  for (const auto& [name, t] : data.model) {
    ASSERT_TRUE(stored.count(name)) << name;
    EXPECT_EQ(stored[name].scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(stored[name].equal(t)) << name;
  }
  EXPECT_EQ(stored["conv.codec_index"].scalar_type(), torch::kInt32);
  EXPECT_EQ(stored["bn.num_batches_tracked"].scalar_type(), torch::kInt64);

  // Loading into a fresh model reproduces every tensor bitwise.
  torch::manual_seed(2);
  Tiny b;
  load_module_state(*b, back.model, path);
  auto sa = module_state(*a), sb = module_state(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(sa[i].second.equal(sb[i].second)) << sa[i].first;

  // The layout is /model/<module/path>/<name>: check with the HDF5 tools view of names.
  const auto meta = read_checkpoint_meta(path);
  EXPECT_EQ(meta.epoch, 3);
  fs::remove_all(dir);
}

TEST(Checkpoint, MissingFileNamesThePath) {
  const auto msg = error_of([] { read_checkpoint("/nonexistent/dir/last.h5"); });
  EXPECT_NE(msg.find("/nonexistent/dir/last.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

TEST(Checkpoint, NotHdf5IsReported) {
  const auto dir = temp_dir("nothdf5");
  const auto path = dir + "/model.pth";
  std::ofstream(path) << "PK\x03\x04 this is a zip, not HDF5";
  const auto msg = error_of([&] { read_checkpoint(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
  // A truncated checkpoint is not HDF5 either.
  Tiny m;
  write_checkpoint(dir + "/good.h5", sample(*m));
  const auto size = fs::file_size(dir + "/good.h5");
  fs::copy_file(dir + "/good.h5", dir + "/cut.h5");
  fs::resize_file(dir + "/cut.h5", size / 3);
  const auto msg2 = error_of([&] { read_checkpoint(dir + "/cut.h5"); });
  EXPECT_NE(msg2.find("cut.h5"), std::string::npos) << msg2;
  fs::remove_all(dir);
}

TEST(Checkpoint, WrongFormatVersionIsReported) {
  const auto dir = temp_dir("version");
  const auto path = dir + "/old.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  // Rewrite format_version in place with the HDF5 C API.
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t g = H5Gopen2(f, "meta", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "format_version", H5P_DEFAULT);
    int64_t v = 99;
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(f);
  }
  const auto msg = error_of([&] { read_checkpoint(path); });
  EXPECT_NE(msg.find("format_version"), std::string::npos) << msg;
  EXPECT_NE(msg.find("99"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(Checkpoint, StrictLoadReportsShapeMissingAndUnused) {
  Tiny m;
  auto state = module_state(*m);
  // Wrong shape for conv.weight, drop conv.clip, add an unknown entry.
  NamedTensors bad;
  for (auto& [n, t] : state) {
    if (n == "conv.clip") continue;
    bad.emplace_back(n, n == "conv.weight" ? torch::zeros({3, 4, 1, 1}) : t);
  }
  bad.emplace_back("head.bias", torch::zeros({10}));
  const auto msg = error_of([&] { load_module_state(*m, bad, "/runs/x/last.h5"); });
  EXPECT_NE(msg.find("/runs/x/last.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape mismatch for 'conv.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 2, 1, 1]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 4, 1, 1]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing entry 'conv.clip'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unused entry 'head.bias'"), std::string::npos) << msg;
}

TEST(Checkpoint, LenientInitReportsMatchedMissingUnused) {
  // An "FP" checkpoint: no quantizer clip, weights under a `module.` prefix,
  // a [1,1] tensor for a [1] parameter (reshaped), and an extra key.
  torch::manual_seed(3);
  Tiny fp;
  NamedTensors state;
  for (auto& [n, t] : module_state(*fp)) {
    if (n == "conv.clip") continue;
    state.emplace_back("module." + n, t);
  }
  state.emplace_back("module.fc.weight", torch::zeros({10, 3}));
  torch::manual_seed(4);
  Tiny q;
  const auto clip_before = q->conv->clip.clone();
  const auto report = init_module_from(*q, state);
  EXPECT_TRUE(q->conv->weight.equal(fp->conv->weight));
  EXPECT_TRUE(q->conv->clip.equal(clip_before));
  ASSERT_EQ(report.missing.size(), 1u);
  EXPECT_EQ(report.missing[0], "conv.clip");
  ASSERT_EQ(report.unused.size(), 1u);
  EXPECT_EQ(report.unused[0], "fc.weight");
  EXPECT_EQ(report.matched.size(), module_state(*q).size() - 1);
  EXPECT_NE(report.summary().find("conv.clip"), std::string::npos);

  NamedTensors reshaped{{"conv.clip", torch::full({1, 1, 1, 1}, 2.5)}};
  const auto r2 = init_module_from(*q, reshaped);
  EXPECT_EQ(r2.reshaped.size(), 1u);
  EXPECT_FLOAT_EQ(q->conv->clip.item<float>(), 2.5f);
}

TEST(Checkpoint, InitSummaryGroupsLongListsByLeafName) {
  InitReport r;
  for (int i = 0; i < 20; ++i) {
    r.missing.push_back("layer" + std::to_string(i) + ".quant_weight.clip_val");
    r.missing.push_back("layer" + std::to_string(i) + ".quant_weight.iteration");
  }
  r.unused = {"fc.weight"};
  const std::string s = r.summary();
  EXPECT_NE(s.find("missing: 20 x *.clip_val, 20 x *.iteration (first: layer0.quant_weight.clip_val)"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.find("layer7."), std::string::npos) << s;
  EXPECT_NE(s.find("unused: fc.weight"), std::string::npos) << s;
}

TEST(CheckpointDeathTest, CrashDuringSaveKeepsThePreviousCheckpoint) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto dir = temp_dir("crash", true);
  const auto path = dir + "/last.h5";
  Tiny m;
  auto first = sample(*m);
  first.meta.epoch = 1;
  write_checkpoint(path, first);
  auto second = sample(*m);
  second.meta.epoch = 2;
  EXPECT_DEATH(
      {
        ::setenv("QTOOL_TEST_CRASH_AFTER_TEMP", "1", 1);
        write_checkpoint(path, second);
      },
      "");
  // The previous checkpoint is intact and loadable.
  const auto back = read_checkpoint(path);
  EXPECT_EQ(back.meta.epoch, 1);
  Tiny other;
  EXPECT_NO_THROW(load_module_state(*other, back.model, path));
  // The crashed writer left only its hidden temporary file beside it.
  int temps = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".last.h5.tmp-", 0) == 0) ++temps;
  EXPECT_EQ(temps, 1);
  fs::remove_all(dir);
}
