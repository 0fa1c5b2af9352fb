// HDF5 checkpoints: round trip with dtypes, errors naming file and entry,
// crash safety of the atomic write, lenient initialisation, hostile files.
#include "checkpoint/checkpoint.hpp"
#include "expect_error.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <hdf5.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <vector>

using qtool_test::expect_error;

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
  const auto msg = expect_error([] { read_checkpoint("/nonexistent/dir/last.h5"); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find("/nonexistent/dir/last.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

TEST(Checkpoint, NotHdf5IsReported) {
  const auto dir = temp_dir("nothdf5");
  const auto path = dir + "/model.pth";
  std::ofstream(path) << "PK\x03\x04 this is a zip, not HDF5";
  const auto msg = expect_error([&] { read_checkpoint(path); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
  // A truncated checkpoint is not HDF5 either.
  Tiny m;
  write_checkpoint(dir + "/good.h5", sample(*m));
  const auto size = fs::file_size(dir + "/good.h5");
  fs::copy_file(dir + "/good.h5", dir + "/cut.h5");
  fs::resize_file(dir + "/cut.h5", size / 3);
  const auto msg2 = expect_error([&] { read_checkpoint(dir + "/cut.h5"); }, qsdk::ErrorCategory::checkpoint);
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
  const auto msg = expect_error([&] { read_checkpoint(path); }, qsdk::ErrorCategory::checkpoint);
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
  const auto msg =
      expect_error([&] { load_module_state(*m, bad, "/runs/x/last.h5"); }, qsdk::ErrorCategory::checkpoint);
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

// ---------------------------------------------------------------- hostile files (issue 11)
// The CLI side (every file of tests/runtime/hostile_checkpoints.py through
// `qhost eval`) is runtime_hostile_checkpoint_test; these check the reader's API.

namespace {

// Opens `path` read-write and runs `edit` on the file handle.
void edit_file(const std::string& path, const std::function<void(hid_t)>& edit) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  edit(f);
  ASSERT_GE(H5Fclose(f), 0);
}

// Replaces /model/<name> by an unwritten float dataset of `rows` x `cols`.
void replace_with_huge(hid_t f, const std::string& name, hsize_t rows, hsize_t cols) {
  const std::string full = "model/" + name;
  H5Ldelete(f, full.c_str(), H5P_DEFAULT);
  const hsize_t dims[2] = {rows, cols};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, full.c_str(), H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(space);
}

// In a death-test child: may write 16 KiB per file (RLIMIT_FSIZE; SIGXFSZ
// ignored so write() returns EFBIG), so a 1 MiB checkpoint cannot be completed.
// Exits 0 when write_checkpoint throws a checkpoint error (printed to stderr).
void write_with_small_file_limit(const std::string& path, const torch::nn::Module& m) {
  const rlimit small{16 << 10, 16 << 10};
  ::setrlimit(RLIMIT_FSIZE, &small);
  ::signal(SIGXFSZ, SIG_IGN);
  auto second = sample(m);
  second.meta.epoch = 2;
  second.optimizer.emplace_back("conv.weight/exp_avg", torch::randn({1 << 18}));
  try {
    write_checkpoint(path, second);
  } catch (const qsdk::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::exit(e.category() == qsdk::ErrorCategory::checkpoint ? 0 : 1);
  }
  std::exit(2);
}

}  // namespace

TEST(CheckpointHostile, ArrayValuedAttributeIsRefusedBeforeReading) {
  const auto dir = temp_dir("attr_array");
  const auto path = dir + "/last.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  edit_file(path, [](hid_t f) {
    hid_t g = H5Gopen2(f, "meta", H5P_DEFAULT);
    H5Adelete(g, "epoch");
    const hsize_t n = 100000;  // H5Aread into one int64_t would write 800 KB past it
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(g, "epoch", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int64_t> values(n, 7);
    H5Awrite(a, H5T_NATIVE_INT64, values.data());
    H5Aclose(a);
    H5Sclose(space);
    H5Gclose(g);
  });
  const auto msg = expect_error([&] { read_checkpoint_meta(path); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path + ":/meta/epoch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("single value"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(CheckpointHostile, LinkCycleIsRefused) {
  const auto dir = temp_dir("cycle");
  const auto path = dir + "/last.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  edit_file(path, [](hid_t f) {
    // /model/conv/loop -> /model: a walk without a visited set never ends.
    ASSERT_GE(H5Lcreate_hard(f, "model", f, "model/conv/loop", H5P_DEFAULT, H5P_DEFAULT), 0);
  });
  const auto msg = expect_error([&] { read_checkpoint(path); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path + ":/model/conv/loop"), std::string::npos) << msg;
  EXPECT_NE(msg.find("already seen"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(CheckpointHostile, ShapesAreCheckedBeforeAnythingIsAllocated) {
  const auto dir = temp_dir("huge");
  const auto path = dir + "/last.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  // 150000 x 150000 float32 = 84 GiB declared by a file of a few KB.
  edit_file(path, [](hid_t f) { replace_with_huge(f, "conv/weight", 150000, 150000); });
  CheckpointReadOptions strict;
  strict.model = m.get();
  auto msg = expect_error([&] { read_checkpoint(path, strict); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find("'conv.weight': model has [3, 2, 1, 1], checkpoint has [150000, 150000]"), std::string::npos)
      << msg;
  // Without a model the total is capped.
  msg = expect_error([&] { read_checkpoint(path); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find("MiB of tensors"), std::string::npos) << msg;
  // A lenient read (train.init_from) skips it: a data-less meta tensor, reported as mismatched.
  CheckpointReadOptions lenient = strict;
  lenient.lenient = true;
  const auto data = read_checkpoint(path, lenient);
  std::map<std::string, torch::Tensor> by_name(data.model.begin(), data.model.end());
  ASSERT_TRUE(by_name.count("conv.weight"));
  EXPECT_TRUE(by_name["conv.weight"].is_meta());
  Tiny other;
  const auto report = init_module_from(*other, data.model);
  ASSERT_EQ(report.mismatched.size(), 1u);
  EXPECT_EQ(report.mismatched[0].rfind("conv.weight", 0), 0u) << report.mismatched[0];
  fs::remove_all(dir);
}

TEST(CheckpointHostile, UnwrittenDatasetOfTheRightShapeIsRefused) {
  const auto dir = temp_dir("unwritten");
  const auto path = dir + "/last.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  edit_file(path, [](hid_t f) {
    H5Ldelete(f, "model/bn/running_mean", H5P_DEFAULT);
    const hsize_t n = 3;
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, "model/bn/running_mean", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(space);
  });
  CheckpointReadOptions ro;
  ro.model = m.get();
  const auto msg = expect_error([&] { read_checkpoint(path, ro); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path + ":/model/bn/running_mean"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds no data"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// Found while writing the checkpoint fuzz target: HDF5 reads a compressed
// chunk whole, so a few elements stored in 64 MiB chunks cost 64 MiB to read
// (and a 1 GiB chunk, 1 GiB) although the shape matches the model.
TEST(CheckpointHostile, ChunksLargerThanTheDataAreRefused) {
  const auto dir = temp_dir("big_chunks");
  const auto path = dir + "/last.h5";
  Tiny m;
  write_checkpoint(path, sample(*m));
  edit_file(path, [](hid_t f) {
    H5Ldelete(f, "model/bn/running_mean", H5P_DEFAULT);
    const hsize_t n = 3, unlimited = H5S_UNLIMITED, chunk = hsize_t{1} << 24;  // 64 MiB of float32
    hid_t space = H5Screate_simple(1, &n, &unlimited);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 1);
    hid_t d = H5Dcreate2(f, "model/bn/running_mean", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    const float values[3] = {1, 2, 3};
    EXPECT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
  });
  CheckpointReadOptions ro;
  ro.model = m.get();
  const auto msg = expect_error([&] { read_checkpoint(path, ro); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path + ":/model/bn/running_mean"), std::string::npos) << msg;
  EXPECT_NE(msg.find("chunks larger than its 12 bytes of data"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(CheckpointHostile, StrictReadListsAFewUnknownNames) {
  const auto dir = temp_dir("unknown");
  const auto path = dir + "/last.h5";
  Tiny m;
  auto data = sample(*m);
  for (int i = 0; i < 50; ++i) data.model.emplace_back("stranger" + std::to_string(100 + i), torch::zeros({2}));
  write_checkpoint(path, data);
  CheckpointReadOptions ro;
  ro.model = m.get();
  const auto msg = expect_error([&] { read_checkpoint(path, ro); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find("50 unused entries (not in the model): 'stranger100'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("stranger149"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(CheckpointHostile, NonFiniteParametersAreRefusedUnlessAllowed) {
  const auto dir = temp_dir("nonfinite");
  const auto path = dir + "/last.h5";
  Tiny m;
  {
    torch::NoGradGuard no_grad;
    m->conv->weight[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
  }
  write_checkpoint(path, sample(*m));
  CheckpointReadOptions ro;
  ro.model = m.get();
  const auto msg = expect_error([&] { read_checkpoint(path, ro); }, qsdk::ErrorCategory::checkpoint);
  EXPECT_NE(msg.find(path + ":/model/conv/weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--allow-nonfinite"), std::string::npos) << msg;
  ro.allow_nonfinite = true;
  Tiny other;
  EXPECT_NO_THROW(load_module_state(*other, read_checkpoint(path, ro).model, path));
  fs::remove_all(dir);
}

TEST(CheckpointDeathTest, FailedWriteKeepsThePreviousCheckpointAndRemovesItsTemp) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto dir = temp_dir("write_fail", true);
  const auto path = dir + "/last.h5";
  Tiny m;
  auto first = sample(*m);
  first.meta.epoch = 1;
  write_checkpoint(path, first);
  EXPECT_EXIT(write_with_small_file_limit(path, *m), ::testing::ExitedWithCode(0),
              "last\\.h5: cannot write the checkpoint");
  const auto back = read_checkpoint(path);
  EXPECT_EQ(back.meta.epoch, 1);
  int temps = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".last.h5.tmp-", 0) == 0) ++temps;
  EXPECT_EQ(temps, 0) << "the failed write left its temporary file";
  fs::remove_all(dir);
}
