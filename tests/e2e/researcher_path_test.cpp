// The researcher's everyday commands end to end: `--synthetic` stands in for
// any experiment's dataset (shape, classes and batch size kept), and `qhost
// eval --config` evaluates weights that carry no configuration of their own.
#include "run_qhost.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

using Result = qtool_test::QhostResult;
using qtool_test::read_text;

Result qhost(const std::string& args) { return qtool_test::run_qhost(QHOST_EXE, E2E_WORK, args); }

std::string experiment(const std::string& name) { return std::string(QTOOL_EXPERIMENTS_DIR) + "/" + name; }

std::string fresh(const std::string& name) {
  const auto dir = std::string(E2E_WORK) + "/researcher_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The lines qhost eval prints on stdout ("top1 ...", "top5 ...", "loss ...", "samples ...").
std::string eval_lines(const std::string& output) {
  std::string out;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(start, end - start);
    for (const char* key : {"top1 ", "top5 ", "loss ", "samples "})
      if (line.rfind(key, 0) == 0) out += line + "\n";
    start = end + 1;
  }
  return out;
}

}  // namespace

// The ImageNet row: its [data] keys belong to imagefolder; --synthetic keeps
// the 3x224x224 shape, ImageNet's 1000 classes and the batch sizes.
TEST(Synthetic, StandsInForImageFolderKeepingShapeClassesAndBatch) {
  auto r = qhost("check " + experiment("lsq_r18_2bit.toml") + " --synthetic --print");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line : {"type = \"synthetic\"\n", "channels = 3\n", "height = 224\n", "width = 224\n",
                           "num_classes = 1000\n", "batch_size = 256\n", "eval_batch_size = 200\n",
                           "num_samples = 1024\n"})
    EXPECT_TRUE(has(r.output, line)) << line << "\n" << r.output;
  EXPECT_FALSE(has(r.output, "/data/imagenet")) << r.output;  // the reader's keys are gone
  // Without the flag the reader's keys are what they are: synthetic rejects them.
  r = qhost("check " + experiment("lsq_r18_2bit.toml") + " --set data.type=synthetic");
  EXPECT_EQ(r.code, 2) << r.output;
}

TEST(Synthetic, CifarAndIdxRowsKeepTheirNativeShape) {
  auto r = qhost("check " + experiment("lsq_r20_cifar100_2bit_base_realskip.toml") + " --synthetic --print");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line : {"channels = 3\n", "height = 32\n", "num_classes = 100\n", "batch_size = 128\n"})
    EXPECT_TRUE(has(r.output, line)) << line << "\n" << r.output;
  r = qhost("check " + experiment("quickstart.toml") + " --synthetic --print");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line : {"channels = 1\n", "height = 28\n", "num_classes = 10\n", "batch_size = 128\n"})
    EXPECT_TRUE(has(r.output, line)) << line << "\n" << r.output;
}

TEST(Synthetic, UnknownClassCountIsALocatedConfigErrorWithAHint) {
  const auto dir = fresh("unknown_classes");
  // An idx reader without num_classes: the stand-in cannot know the class count.
  std::ofstream(dir + "/idx.toml") << "[data]\ntype = \"idx\"\nroot = \"/nonexistent\"\nsize = 28\nbatch_size = 8\n"
                                   << "[model]\ntype = \"resnet\"\ndepth = 20\n";
  auto r = qhost("check " + dir + "/idx.toml --synthetic");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(has(r.output, "data.num_classes: --synthetic cannot tell the class count of dataset/idx without its "
                            "files (hint: give it: --synthetic --set data.num_classes=N)"))
      << r.output;
}

// The headline case: the ImageNet LSQ row (KD teacher checkpoint absent)
// smoke-runs on a laptop. Batch 8 keeps the test short; the shape is the row's.
TEST(Synthetic, SmokeRunOfTheImageNetRowWithoutItsTeacherCheckpoint) {
  const auto dir = fresh("r18_smoke");
  auto r = qhost("run " + experiment("lsq_r18_2bit.toml") + " --synthetic --smoke --out " + dir +
                 " --set data.batch_size=8 --set data.eval_batch_size=8 --set data.workers=1 --set experiment.threads=2");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto log = read_text(dir + "/log.txt");
  EXPECT_TRUE(has(log, "in place of dataset/imagefolder")) << log;
  EXPECT_TRUE(has(log, "--synthetic: teacher checkpoint")) << log;
  EXPECT_TRUE(has(log, "3x224x224")) << log;
  EXPECT_TRUE(fs::exists(dir + "/last.h5"));
}

// `eval --config` builds what the stored configuration builds.
TEST(EvalConfig, SameResultAsTheStoredConfiguration) {
  const auto dir = fresh("eval_config");
  auto r = qhost("run " + std::string(E2E_DIR) + "/tiny.toml --smoke --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  auto stored = qhost("eval " + dir + "/last.h5");
  ASSERT_EQ(stored.code, 0) << stored.output;
  auto given = qhost("eval " + dir + "/last.h5 --config " + std::string(E2E_DIR) + "/tiny.toml");
  ASSERT_EQ(given.code, 0) << given.output;
  EXPECT_FALSE(eval_lines(stored.output).empty()) << stored.output;
  EXPECT_EQ(eval_lines(given.output), eval_lines(stored.output));
  EXPECT_TRUE(has(given.output, "eval: model, quantizers and data from")) << given.output;
}

// A QTool-layout torchvision ResNet-18 checkpoint ({'state_dict': {'module.' + name}},
// 10 classes), converted by tools/torch2h5.py: it holds no configuration, so eval
// needs --config.
TEST(EvalConfig, ConvertedTorchvisionResNet18) {
  const auto dir = fresh("converted_r18");
  const std::string py = "/usr/bin/python3 ";
  ASSERT_EQ(std::system((py + QTOOL_MODELS_TEST_DIR "/tv_resnet18_fixture.py make " + dir + " >/dev/null").c_str()), 0);
  ASSERT_EQ(std::system((py + QTOOL_TOOLS_DIR "/torch2h5.py " + dir + "/resnet18.pth " + dir + "/r18.h5 >/dev/null")
                            .c_str()),
            0);
  auto r = qhost("eval " + dir + "/r18.h5");
  EXPECT_EQ(r.code, 5) << r.output;
  EXPECT_TRUE(has(r.output, "qhost eval " + dir + "/r18.h5 --config EXPERIMENT.toml")) << r.output;
  r = qhost("eval " + dir + "/r18.h5 --config " + experiment("fp/imagenet_resnet18_torch.toml") +
            " --synthetic --set data.num_classes=10 --set data.eval_batch_size=4 --set data.num_samples=8"
            " --set experiment.threads=2");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "samples 8\n")) << r.output;
  // The weights were loaded strictly: a converted file for another network is refused.
  r = qhost("eval " + dir + "/r18.h5 --config " + experiment("quickstart.toml") + " --synthetic");
  EXPECT_EQ(r.code, 5) << r.output;
}
