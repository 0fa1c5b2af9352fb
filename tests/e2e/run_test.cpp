// `qhost run` end to end on a tiny synthetic experiment: run-folder files,
// exact resume (bitwise on CPU), `qhost eval` of a checkpoint, smoke runs.
#include "checkpoint/checkpoint.hpp"
#include "files.hpp"
#include "platform/device.hpp"
#include "run_qhost.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;
using namespace qhost;

namespace {

using Result = qtool_test::QhostResult;
using qtool_test::fresh_dir;
using qtool_test::read_text;

// Runs qhost with `args` (and optional environment assignments), capturing stdout+stderr.
Result run_qhost(const std::string& args, const std::string& env = "") {
  return qtool_test::run_qhost(QHOST_EXE, E2E_WORK, args, env);
}

std::string tiny() { return std::string(E2E_DIR) + "/tiny.toml"; }

void expect_same_tensors(const NamedTensors& a, const NamedTensors& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  std::map<std::string, torch::Tensor> mb(b.begin(), b.end());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(mb.count(name)) << what << " " << name;
    EXPECT_TRUE(t.equal(mb[name])) << what << " " << name << " differs (max abs diff "
                                   << (t.to(torch::kDouble) - mb[name].to(torch::kDouble)).abs().max().item<double>()
                                   << ")";
  }
}

}  // namespace

TEST(E2E, RunWritesEveryRunFolderFile) {
  const auto dir = fresh_dir(E2E_WORK, "full");
  auto r = run_qhost("run " + tiny() + " --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"resolved.toml", "log.txt", "metrics.jsonl", "last.h5", "best.h5"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f << "\n" << r.output;
  // metrics.jsonl: step lines every log_every = 2 steps, one train_epoch and one eval line per epoch.
  const auto metrics = read_text(dir + "/metrics.jsonl");
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = metrics.find(s); p != std::string::npos; p = metrics.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("\"kind\": \"step\""), 4u) << metrics;
  // (device) throughput, data wait and peak device memory (null on the CPU) in step and epoch records.
  EXPECT_EQ(count("\"data_wait_frac\": "), 6u) << metrics;
  EXPECT_EQ(count("\"peak_mem_mb\": null"), 6u) << metrics;
  EXPECT_NE(read_text(dir + "/log.txt").find("threads) ([experiment] device = \"auto\"), precision fp32"),
            std::string::npos);
  EXPECT_NE(read_text(dir + "/log.txt").find("device: cpu ("), std::string::npos);
  EXPECT_EQ(count("\"kind\": \"train_epoch\""), 2u) << metrics;
  EXPECT_EQ(count("\"kind\": \"eval\""), 2u) << metrics;
  // The checkpoint: 2 epochs, 8 steps, the resolved config, the metric history, SGD momentum.
  const auto ck = read_checkpoint(dir + "/last.h5");
  EXPECT_EQ(ck.meta.epoch, 2);
  EXPECT_EQ(ck.meta.step, 8);
  EXPECT_EQ(ck.meta.resolved_toml, read_text(dir + "/resolved.toml"));
  EXPECT_EQ(ck.metrics_jsonl, metrics);
  EXPECT_EQ(ck.meta.optimizer_type, "sgd");
  EXPECT_FALSE(ck.optimizer.empty());
  EXPECT_FALSE(ck.meta.torch_rng_state.empty());
  bool has_bn_counter = false;
  for (const auto& [name, t] : ck.model)
    if (name.find("num_batches_tracked") != std::string::npos) {
      has_bn_counter = true;
      EXPECT_EQ(t.scalar_type(), torch::kInt64) << name;
      EXPECT_EQ(t.item<int64_t>(), 8) << name;
    }
  EXPECT_TRUE(has_bn_counter);
  EXPECT_NE(read_text(dir + "/log.txt").find("eval"), std::string::npos);

  // qhost eval rebuilds the model from the stored configuration.
  auto e = run_qhost("eval " + dir + "/best.h5");
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_NE(e.output.find("top1 "), std::string::npos) << e.output;
  // Evaluating last.h5 reproduces the final evaluation top-1 logged by the run.
  auto e2 = run_qhost("eval " + dir + "/last.h5");
  ASSERT_EQ(e2.code, 0) << e2.output;
  const auto top1_pos = e2.output.find("top1 ");
  ASSERT_NE(top1_pos, std::string::npos);
  const double top1 = std::stod(e2.output.substr(top1_pos + 5));
  const auto last_eval = metrics.rfind("\"kind\": \"eval\"");
  const auto t1 = metrics.find("\"top1\": ", last_eval);
  EXPECT_NEAR(top1, std::stod(metrics.substr(t1 + 8)), 1e-4);
}

TEST(E2E, ResumeContinuesBitwiseExactly) {
  const auto straight = fresh_dir(E2E_WORK, "straight");
  const auto resumed = fresh_dir(E2E_WORK, "resumed");
  auto a = run_qhost("run " + tiny() + " --out " + straight);
  ASSERT_EQ(a.code, 0) << a.output;
  // Stop after epoch 1 (as if killed right after its checkpoint), then --resume.
  auto b1 = run_qhost("run " + tiny() + " --out " + resumed, "QTOOL_TEST_STOP_AFTER_EPOCHS=1");
  ASSERT_EQ(b1.code, 0) << b1.output;
  EXPECT_EQ(read_checkpoint(resumed + "/last.h5").meta.epoch, 1);
  auto b2 = run_qhost("run " + tiny() + " --out " + resumed + " --resume");
  ASSERT_EQ(b2.code, 0) << b2.output;
  const auto ca = read_checkpoint(straight + "/last.h5");
  const auto cb = read_checkpoint(resumed + "/last.h5");
  EXPECT_EQ(cb.meta.epoch, 2);
  EXPECT_EQ(cb.meta.step, ca.meta.step);
  expect_same_tensors(ca.model, cb.model, "model");
  expect_same_tensors(ca.optimizer, cb.optimizer, "optimizer");
  EXPECT_EQ(ca.meta.torch_rng_state, cb.meta.torch_rng_state);
  EXPECT_DOUBLE_EQ(ca.meta.best_top1, cb.meta.best_top1);
  // The metric history differs only in timings: same number of lines.
  auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  EXPECT_EQ(lines(ca.metrics_jsonl), lines(cb.metrics_jsonl));
  EXPECT_EQ(lines(read_text(resumed + "/metrics.jsonl")), lines(ca.metrics_jsonl));
}

TEST(E2E, ResumeWithoutCheckpointIsAClearError) {
  const auto dir = fresh_dir(E2E_WORK, "noresume");
  auto r = run_qhost("run " + tiny() + " --out " + dir + " --resume");
  EXPECT_EQ(r.code, 5) << r.output;  // checkpoint category
  EXPECT_NE(r.output.find("last.h5"), std::string::npos) << r.output;
}

TEST(E2E, EvalOfMissingOrForeignFileIsAClearError) {
  auto r = run_qhost("eval /nonexistent/best.h5");
  EXPECT_EQ(r.code, 5) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/best.h5"), std::string::npos) << r.output;
  auto r2 = run_qhost("eval " + tiny());
  EXPECT_EQ(r2.code, 5) << r2.output;
  EXPECT_NE(r2.output.find("not an HDF5 file"), std::string::npos) << r2.output;
}

TEST(E2E, KdWithMissingTeacherCheckpointIsACheckpointErrorNamingFileAndTrick) {
  const auto dir = fresh_dir(E2E_WORK, "kd_missing_teacher");
  const std::string toml = std::string(E2E_DIR) + "/kd_missing_teacher.toml";
  auto r = run_qhost("run " + toml + " --out " + dir);
  EXPECT_EQ(r.code, 5) << r.output;  // checkpoint category
  // The trick, the file as resolved, and the [[trick]] entry (index and file:line).
  EXPECT_NE(r.output.find("error[checkpoint]: trick/kd (plugin 'kd'"), std::string::npos) << r.output;
  // The path as resolved against the experiment file's folder (every path option is).
  EXPECT_NE(r.output.find(std::string(E2E_DIR) + "/no_such_teacher/best.h5: teacher checkpoint (checkpoint = \"" +
                          std::string(E2E_DIR) + "/no_such_teacher/best.h5\"): checkpoint file not found [trick[0] at " +
                          std::string(E2E_DIR) + "/kd_missing_teacher.toml:8:1]"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("hint: train the full-precision teacher first"), std::string::npos) << r.output;
  // Nothing was trained.
  EXPECT_FALSE(fs::exists(dir + "/last.h5"));
}

TEST(E2E, SmokeRunsTwoStepsAndInitFromAnotherRun) {
  const auto src = fresh_dir(E2E_WORK, "smoke_src");
  auto a = run_qhost("run " + tiny() + " --out " + src + " --smoke");
  ASSERT_EQ(a.code, 0) << a.output;
  const auto ck = read_checkpoint(src + "/last.h5");
  EXPECT_EQ(ck.meta.epoch, 1);
  EXPECT_EQ(ck.meta.step, 2);
  // Initialise a second run from it (the FP -> finetune path) and check the log reports it.
  const auto dst = fresh_dir(E2E_WORK, "smoke_dst");
  auto b = run_qhost("run " + tiny() + " --out " + dst + " --smoke --set train.init_from=" + src + "/last.h5");
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(read_text(dst + "/log.txt").find("init_from"), std::string::npos);
  EXPECT_NE(read_text(dst + "/log.txt").find("0 missing"), std::string::npos) << read_text(dst + "/log.txt");
}

TEST(E2E, Bf16ChannelsLastRunsOnTheCpuAndCudaIsRefusedAtCheckTime) {
  const auto dir = fresh_dir(E2E_WORK, "bf16");
  auto r = run_qhost("run " + tiny() + " --out " + dir +
                     " --smoke --set train.precision=bf16 --set train.channels_last=true --set experiment.device=cpu");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto log = read_text(dir + "/log.txt");
  EXPECT_NE(log.find("threads) ([experiment] device = \"cpu\"), precision bf16, channels_last"), std::string::npos)
      << log;
  EXPECT_NE(read_text(dir + "/resolved.toml").find("precision = \"bf16\""), std::string::npos);
  EXPECT_EQ(read_checkpoint(dir + "/last.h5").meta.step, 2);
  if (qhost::built_with_cuda()) GTEST_SKIP() << "CUDA build: the cuda refusal is for CPU-only builds";
  auto c = run_qhost("check " + tiny() + " --set experiment.device=cuda:1");
  EXPECT_EQ(c.code, 2) << c.output;
  EXPECT_NE(c.output.find("experiment.device: \"cuda:1\" needs CUDA, but this qhost was built against a CPU-only "
                          "LibTorch (hint: set [experiment] device = \"auto\" or \"cpu\""),
            std::string::npos)
      << c.output;
  auto f = run_qhost("check " + tiny() + " --set train.precision=fp16");
  EXPECT_EQ(f.code, 2) << f.output;
  EXPECT_NE(f.output.find("train.precision: fp16 mixed precision needs a CUDA device"), std::string::npos) << f.output;
}
