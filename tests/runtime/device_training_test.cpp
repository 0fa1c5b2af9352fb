// Device-generic training on the CPU (docs/training.md#devices-and-precision):
// [experiment] device resolution and its check-time errors, device-independent
// checkpoints, no host synchronisation inside a training step (LSQ, DoReFa,
// PACT), bf16 autocast with exact fp32 quantizers, fp16 loss scaling, and
// channels_last. The CUDA side of the same code is not run here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <unistd.h>

#include "checkpoint/checkpoint.hpp"
#include "config/config.hpp"
#include "data/data_loader.hpp"
#include "expect_error.hpp"
#include "platform/device.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"
#include "train/optimizer.hpp"
#include "train/trainer.hpp"

#include <qsdk/error.hpp>

using qtool_test::expect_error;

namespace {

namespace fs = std::filesystem;
using qsdk::Table;

// ---------------------------------------------------------------- device option

TEST(Device, AutoResolvesToTheCpuWithoutAGpuAndToCuda0WithOne) {
  EXPECT_EQ(qhost::resolve_device("auto", 0).str(), "cpu");
  EXPECT_EQ(qhost::resolve_device("auto", 2).str(), "cuda:0");
  EXPECT_EQ(qhost::resolve_device("cpu", 2).str(), "cpu");
  EXPECT_EQ(qhost::resolve_device("cuda", 1).str(), "cuda:0");
  EXPECT_EQ(qhost::resolve_device("cuda:1", 2).str(), "cuda:1");
  // This machine: a CPU LibTorch, or no GPU.
  if (!qhost::built_with_cuda() || !torch::cuda::is_available()) EXPECT_EQ(qhost::resolve_device("auto").str(), "cpu");
}

TEST(Device, AbsentIndexOrMissingCudaIsACleanConfigErrorNamingTheKey) {
  auto e = expect_error([] { qhost::resolve_device("cuda:3", 2); }, qsdk::ErrorCategory::config);
  EXPECT_NE(e.find("experiment.device"), std::string::npos) << e;
  EXPECT_NE(e.find("\"cuda:3\" requested but 2 GPUs are visible (cuda:0 to cuda:1)"), std::string::npos) << e;
  EXPECT_NE(e.find("hint: use an index below 2"), std::string::npos) << e;
  e = expect_error([] { qhost::resolve_device("cuda:0", 0); }, qsdk::ErrorCategory::config);
  EXPECT_NE(e.find("no GPU is visible"), std::string::npos) << e;
  e = expect_error([] { qhost::resolve_device("gpu"); }, qsdk::ErrorCategory::config);
  EXPECT_NE(e.find("\"gpu\" is not a device"), std::string::npos) << e;
  if (!qhost::built_with_cuda()) {
    e = expect_error([] { qhost::resolve_device("cuda"); }, qsdk::ErrorCategory::config);
    EXPECT_NE(e.find("CPU-only LibTorch"), std::string::npos) << e;
    EXPECT_NE(e.find("README.md#gpus"), std::string::npos) << e;
  }
}

class DeviceConfig : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new qhost::Registry();
    const char* env = std::getenv("QTOOL_PLUGIN_PATH");
    loader_ = new qhost::PluginLoader(*registry_, {env ? env : QTOOL_TEST_PLUGIN_DIR});
    for (const char* name : {"synthetic", "resnet", "lsq", "dorefa", "pact"}) loader_->load(name);
  }
  // The problems `qhost check` reports for these [experiment]/[train] lines.
  static std::vector<qhost::ConfigProblem> check(const std::string& lines) {
    auto config = qhost::Config::from_string(
        "[data]\ntype = \"synthetic\"\nnum_samples = 8\nnum_classes = 2\n[model]\ntype = \"resnet\"\ndepth = 20\n" +
            lines,
        "test.toml");
    return config.check(*registry_);
  }
  static const qhost::ConfigProblem* find(const std::vector<qhost::ConfigProblem>& ps, const std::string& key) {
    for (const auto& p : ps)
      if (p.key == key) return &p;
    return nullptr;
  }
  static qhost::Registry* registry_;
  static qhost::PluginLoader* loader_;
};
qhost::Registry* DeviceConfig::registry_ = nullptr;
qhost::PluginLoader* DeviceConfig::loader_ = nullptr;

TEST_F(DeviceConfig, CheckAcceptsAutoCpuAndCudaIndexSyntax) {
  for (const char* d : {"auto", "cpu"}) {
    const auto ps = check(std::string("[experiment]\ndevice = \"") + d + "\"\n");
    EXPECT_EQ(find(ps, "experiment.device"), nullptr) << d << ": " << find(ps, "experiment.device")->str();
  }
  const auto ps = check("[experiment]\ndevice = \"cuda:\"\n");
  ASSERT_NE(find(ps, "experiment.device"), nullptr);
  EXPECT_NE(find(ps, "experiment.device")->message.find("is not a device"), std::string::npos);
}

TEST_F(DeviceConfig, CudaOnACpuOnlyBuildIsACheckTimeErrorWithAHint) {
  if (qhost::built_with_cuda()) GTEST_SKIP() << "built against a CUDA LibTorch";
  for (const char* d : {"cuda", "cuda:1"}) {
    const auto ps = check(std::string("[experiment]\ndevice = \"") + d + "\"\n");
    const auto* p = find(ps, "experiment.device");
    ASSERT_NE(p, nullptr) << d;
    EXPECT_NE(p->message.find("CPU-only LibTorch"), std::string::npos) << p->str();
    EXPECT_NE(p->hint.find("device = \"auto\" or \"cpu\""), std::string::npos) << p->str();
    EXPECT_EQ(p->where.line, 9) << p->str();  // the device line
  }
}

TEST_F(DeviceConfig, Fp16OnTheCpuIsRefusedAndBf16Accepted) {
  auto ps = check("[experiment]\ndevice = \"cpu\"\n[train]\nprecision = \"fp16\"\n");
  const auto* p = find(ps, "train.precision");
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("fp16 mixed precision needs a CUDA device"), std::string::npos) << p->str();
  EXPECT_NE(p->hint.find("bf16"), std::string::npos) << p->str();
  ps = check("[experiment]\ndevice = \"cpu\"\n[train]\nprecision = \"bf16\"\nchannels_last = true\n");
  EXPECT_EQ(find(ps, "train.precision"), nullptr);
  EXPECT_EQ(find(ps, "train.channels_last"), nullptr);
}

// ---------------------------------------------------------------- training pieces

/// Records the loss of every step and, with a counter, the host syncs up to each step's end.
struct Recorder : qsdk::Trick {
  qhost::HostSyncCounter* counter = nullptr;
  bool read_loss = false;
  std::vector<double> losses;
  std::vector<int64_t> syncs_at_step_end;
  torch::Tensor transform_loss(const torch::Tensor& loss, const torch::Tensor&, const qsdk::Batch&,
                               const qsdk::StepInfo&) override {
    if (read_loss) {
      const int64_t before = counter ? counter->count() : 0;
      losses.push_back(loss.item<double>());  // the test's own read, not the trainer's
      if (counter) counter_bias += counter->count() - before;
    }
    return loss;
  }
  void on_step_end(const qsdk::StepInfo&) override {
    if (counter) syncs_at_step_end.push_back(counter->count() - counter_bias);
  }
  int64_t counter_bias = 0;
};

class DeviceTraining : public DeviceConfig {
 protected:
  struct Run {
    std::unique_ptr<qhost::LayerFactory> factory;
    std::unique_ptr<qhost::Trainer> trainer;
    std::shared_ptr<Recorder> recorder;
  };

  // A 4-channel ResNet-20 on 8x8 synthetic images (16 samples, batch 8), quantized by `quant`.
  static Run make(const Table& quant, qhost::TrainerSettings ts, int64_t samples = 16, double lr = 0.05) {
    Run r;
    qsdk::DatasetContext dctx;
    dctx.seed = 5;
    dctx.train = true;
    Table data{{"type", "synthetic"}, {"num_samples", samples}, {"num_classes", int64_t{4}}, {"channels", int64_t{3}},
               {"height", int64_t{8}}, {"width", int64_t{8}}, {"signal", 2.0}};
    auto set = registry_->make_dataset(data, dctx);
    qhost::DataLoaderOptions lo;
    lo.batch_size = 8;
    lo.workers = 0;
    lo.seed = 5;
    qhost::TrainerParts parts;
    parts.train_loader = std::make_unique<qhost::DataLoader>(set, lo);
    dctx.train = false;
    lo.shuffle = false;
    lo.drop_last = false;
    parts.eval_loader = std::make_unique<qhost::DataLoader>(registry_->make_dataset(data, dctx), lo);
    r.factory = std::make_unique<qhost::LayerFactory>(
        quant, [](const Table& t, const qsdk::QuantizerContext& c) { return registry_->make_quantizer(t, c); }, 8, 8);
    qsdk::ModelContext mctx;
    mctx.num_classes = 4;
    mctx.input_shape = {3, 8, 8};
    mctx.layers = r.factory.get();
    torch::manual_seed(11);
    parts.model = registry_->make_model(Table{{"type", "resnet"}, {"depth", int64_t{20}}, {"width_alpha", 0.0625}}, mctx);
    parts.optimizer = std::make_unique<qhost::Optimizer>(
        *parts.model, qhost::OptimizerSettings::from_table(Table{{"type", "sgd"}, {"lr", lr}, {"momentum", 0.9}}));
    r.recorder = std::make_shared<Recorder>();
    parts.tricks.push_back(r.recorder);
    parts.trick_names.push_back("trick/recorder");
    r.trainer = std::make_unique<qhost::Trainer>(std::move(parts), ts);
    return r;
  }

  static Table quant_of(const std::string& type, int64_t stable = 0) {
    Table w{{"type", type}, {"bits", int64_t{2}}};
    Table a{{"type", type}, {"bits", int64_t{2}}};
    if (stable > 0) a["stable"] = stable;
    return Table{{"weight", w}, {"activation", a}};
  }

  static std::string temp_dir(const std::string& name) {
    const auto dir = fs::temp_directory_path() / ("qtool_device_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir.string();
  }
};

// ---------------------------------------------------------------- no host sync per step

class NoHostSync : public DeviceTraining, public ::testing::WithParamInterface<std::string> {};

TEST_P(NoHostSync, StepsAfterTheFirstReadNothingFromTheDevice) {
  qhost::TrainerSettings ts;
  ts.epochs = 2;
  ts.log_every = 1000;  // no log line inside the measured steps
  // LSQ activations with a 3-step warm-up: the warm-up clip and its end are device-side too.
  auto run = make(quant_of(GetParam(), GetParam() == "lsq" ? 3 : 0), ts, /*samples=*/48);
  qhost::HostSyncCounter counter;
  run.recorder->counter = &counter;
  run.trainer->fit();
  const auto& at = run.recorder->syncs_at_step_end;
  ASSERT_EQ(at.size(), 12u);
  // Quantizer counters and level_num are mirrored on the host (HostMirror), loss and
  // accuracy summed on the device: no step reads anything, the first one included.
  EXPECT_EQ(at[0], 0) << GetParam() << " step 0 read the device: "
                      << ::testing::PrintToString(counter.names());
  for (size_t i = 1; i < 6; ++i)
    EXPECT_EQ(at[i] - at[i - 1], 0) << GetParam() << " step " << i << " read the device";
  // (between steps 5 and 6: the epoch's end and the evaluation, allowed to read)
  for (size_t i = 7; i < 12; ++i) EXPECT_EQ(at[i] - at[i - 1], 0) << GetParam() << " step " << i << " (epoch 2)";
}

TEST_F(DeviceTraining, AQuantizerRereadsItsCounterOnlyAfterSomethingElseWroteIt) {
  qsdk::QuantizerContext ctx;
  ctx.target = qsdk::QuantTarget::activation;
  ctx.shape = {1, 4, 1, 1};
  ctx.batch_size = 2;
  ctx.input_size = 6;
  auto q = registry_->make_quantizer(Table{{"type", "lsq"}, {"bits", int64_t{2}}, {"stable", int64_t{2}}}, ctx);
  const auto x = torch::rand({2, 4, 6, 6});
  qhost::HostSyncCounter counter;
  for (int i = 0; i < 3; ++i) q->forward(x);
  EXPECT_EQ(counter.count(), 0) << ::testing::PrintToString(counter.names());
  // A checkpoint load puts the counter back into the warm-up: one read, and the warm-up path again.
  {
    torch::NoGradGuard no_grad;
    q->named_buffers()["iteration"].fill_(0);
  }
  const auto clip_before = q->named_parameters()["clip_val"].clone();
  q->forward(x * 10);  // warm-up: the clip moves towards max|x|
  EXPECT_EQ(counter.count(), 1);
  EXPECT_FALSE(q->named_parameters()["clip_val"].equal(clip_before));
  EXPECT_EQ(q->named_buffers()["iteration"].item<float>(), 1.f);
}

INSTANTIATE_TEST_SUITE_P(Quantizers, NoHostSync, ::testing::Values("lsq", "dorefa", "pact"),
                         [](const auto& info) { return info.param; });

TEST_F(DeviceTraining, HostSyncCounterSeesItemAndNonzero) {
  qhost::HostSyncCounter counter;
  auto t = torch::arange(6);
  (void)t.sum().item<int64_t>();
  (void)t.nonzero();
  EXPECT_EQ(counter.count(), 2);
  const int64_t before = qhost::host_reads();
  EXPECT_EQ(qhost::read_scalar(torch::tensor(2.5)), 2.5);
  EXPECT_EQ(qhost::read_scalars({torch::tensor(1), torch::tensor(true)}), (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(qhost::host_reads() - before, 2);
}

// ---------------------------------------------------------------- checkpoints

TEST_F(DeviceTraining, CheckpointsHoldContiguousCpuTensorsAndLoadOntoTheRunsDeviceAndLayout) {
  qhost::TrainerSettings ts;
  ts.epochs = 1;
  ts.channels_last = true;
  auto a = make(quant_of("lsq"), ts);
  a.trainer->fit();
  // Every 4-D weight trained in NHWC.
  int64_t nhwc = 0;
  for (const auto& p : a.trainer->model()->parameters())
    if (p.dim() == 4) {
      EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
      ++nhwc;
    }
  EXPECT_GT(nhwc, 0);
  const auto path = temp_dir("ckpt") + "/last.h5";
  qhost::write_checkpoint(path, a.trainer->snapshot());
  const auto stored = qhost::read_checkpoint(path);
  ASSERT_FALSE(stored.optimizer.empty());
  for (const auto* group : {&stored.model, &stored.optimizer})
    for (const auto& [name, t] : *group) {
      EXPECT_TRUE(t.device().is_cpu()) << name;
      EXPECT_TRUE(t.is_contiguous()) << name;
    }
  // Loaded into an NCHW run and into another NHWC run: same values, each in its own layout and device.
  for (bool cl : {false, true}) {
    qhost::TrainerSettings tb;
    tb.epochs = 2;
    tb.channels_last = cl;
    auto b = make(quant_of("lsq"), tb);
    b.trainer->resume_from(path);
    std::map<std::string, torch::Tensor> saved(stored.model.begin(), stored.model.end());
    for (const auto& [name, t] : qhost::module_state(*b.trainer->model())) {
      EXPECT_EQ(t.device(), torch::Device(torch::kCPU)) << name;
      EXPECT_TRUE(t.equal(saved.at(name))) << name;
      if (t.dim() == 4)
        EXPECT_TRUE(t.is_contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)) << name;
      if (t.dim() == 4 && cl && t.size(1) > 1 && t.size(2) * t.size(3) > 1)
        EXPECT_FALSE(t.is_contiguous()) << name << " is still NCHW";
    }
    // And it trains on from there (optimizer state placed like its parameters).
    b.trainer->fit();
    EXPECT_EQ(b.trainer->epoch(), 2);
  }
}

// ---------------------------------------------------------------- mixed precision

TEST_F(DeviceTraining, Bf16RunTrainsWithFiniteDecreasingLoss) {
  qhost::TrainerSettings ts;
  ts.epochs = 8;
  ts.log_every = 1;
  ts.precision = qhost::Precision::bf16;
  auto run = make(quant_of("lsq"), ts, /*samples=*/8, /*lr=*/0.05);
  run.recorder->read_loss = true;
  const auto result = run.trainer->fit();
  const auto& l = run.recorder->losses;
  ASSERT_EQ(l.size(), 8u);
  for (double v : l) EXPECT_TRUE(std::isfinite(v));
  const double first = (l[0] + l[1]) / 2, last = (l[6] + l[7]) / 2;
  EXPECT_LT(last, first) << "bf16 losses: " << ::testing::PrintToString(l);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(std::isfinite(result->loss));
  // The same run in fp32: autocast did change the arithmetic (close, not equal).
  ts.precision = qhost::Precision::fp32;
  auto ref = make(quant_of("lsq"), ts, /*samples=*/8, /*lr=*/0.05);
  ref.recorder->read_loss = true;
  ref.trainer->fit();
  ASSERT_EQ(ref.recorder->losses.size(), 8u);
  EXPECT_NE(ref.recorder->losses[0], l[0]);
  EXPECT_NEAR(ref.recorder->losses[0], l[0], 0.05 * std::abs(l[0]));
}

TEST_F(DeviceTraining, QuantizersComputeExactlyInFp32InsideBf16Autocast) {
  for (const std::string type : {"lsq", "dorefa", "pact"}) {
    qsdk::QuantizerContext ctx;
    ctx.target = qsdk::QuantTarget::activation;
    ctx.shape = {1, 4, 1, 1};
    ctx.batch_size = 2;
    ctx.input_size = 6;
    auto q = registry_->make_quantizer(Table{{"type", type}, {"bits", int64_t{2}}}, ctx);
    auto ref_q = registry_->make_quantizer(Table{{"type", type}, {"bits", int64_t{2}}}, ctx);
    torch::manual_seed(3);
    // bf16 activations, as an autocast convolution produces them.
    const auto x = (torch::rand({2, 4, 6, 6}) * 3 - 0.5).to(torch::kBFloat16);
    torch::Tensor y;
    {
      qhost::AutocastScope autocast(torch::Device(torch::kCPU), qhost::Precision::bf16);
      ASSERT_TRUE(qhost::autocast_active());
      y = qhost::run_in_fp32(x, [&q](const torch::Tensor& t) { return q->forward(t); });
    }
    EXPECT_FALSE(qhost::autocast_active());
    const auto ref = ref_q->forward(x.to(torch::kFloat));
    EXPECT_EQ(y.scalar_type(), torch::kFloat) << type;
    EXPECT_TRUE(y.equal(ref)) << type << ": max diff " << (y - ref).abs().max().item<double>();
    // On the quantizer's grid: at most 4 distinct levels for 2 bits.
    EXPECT_LE(std::get<0>(at::_unique(y.flatten())).numel(), 4) << type;
  }
}

TEST(LossScaler, SkipsOverflowingStepsBacksOffAndGrows) {
  qhost::LossScaler s(true, /*init_scale=*/1024.0, 2.0, 0.5, /*growth_interval=*/2);
  auto p = torch::zeros({3}, torch::requires_grad());
  auto loss = (p * torch::tensor({1.0f, 2.0f, 3.0f})).sum();
  s.scale_loss(loss).backward();
  EXPECT_TRUE(s.unscale_and_check({p}));
  EXPECT_TRUE(p.grad().equal(torch::tensor({1.0f, 2.0f, 3.0f})));  // unscaled
  s.update(false);
  EXPECT_EQ(s.scale(), 1024.0);
  p.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(s.unscale_and_check({p}));
  s.update(true);
  EXPECT_EQ(s.scale(), 512.0);
  EXPECT_EQ(s.skipped(), 1);
  for (int i = 0; i < 2; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 1024.0);
  qhost::LossScaler off(false);
  EXPECT_EQ(off.scale(), 1.0);
  p.mutable_grad().fill_(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(off.unscale_and_check({p}));  // fp32/bf16: never skips
}

}  // namespace
