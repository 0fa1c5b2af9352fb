// `qhost export` on real data (README "Deploy"): the quickstart network
// (ResNet-20, 16 base channels, Fashion-MNIST) with each uniform method's
// quantizer settings of experiments/fmnist/, trained briefly from scratch (it
// must have learned: top-1 far above chance), exported, and run by ONNX
// Runtime on the first 1,000 test images, decoded from the IDX files by
// ort/idx_agree.js independently of qhost; its top-1 predictions must be
// those of `qhost eval --dump-logits` on the same images, sample for sample.
// The integer model (`--format qtool`, docs/integer-model.md) of the LSQ 2/2
// network must give `qhost eval` the checkpoint's logits on those images:
// the same argmax and max |diff| <= 1e-5 (1 + max |logit|), on all but 1 %.
#include "run_qhost.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>

namespace fs = std::filesystem;

namespace {

using Result = qtool_test::QhostResult;

const std::string kFmnist = "/usr/share/datasets/fashion-mnist";
const std::string kWork = std::string(EXPORT_WORK) + "/fmnist";
// The first 1,000 test images: two evaluation batches of 500 (quickstart's eval_batch_size).
const std::string kEvalBatches = "2";
const std::string kSamples = "1000";

Result run(const std::string& exe, const std::string& args) { return qtool_test::run_qhost(exe, kWork, args); }
Result qhost(const std::string& args) { return run(QHOST_EXE, args); }

/// Trains experiments/fmnist/<experiment> from scratch (no quickstart
/// checkpoint) for one short epoch into kWork/<name>, and evaluates its
/// best.h5 on the first 1,000 test images: logits to <dir>/qhost_logits.npy,
/// top-1 far above chance.
void train_and_eval(const std::string& name, const std::string& experiment, const std::string& sets) {
  const std::string dir = kWork + "/" + name;
  fs::remove_all(dir);
  // 250 steps of batch 64 (a quarter of an epoch; measured: about 75 % after
  // 200) at a from-scratch learning rate, one thread (CTest runs two tests at
  // once on two cores). The run's own evaluation uses the whole test set.
  auto r = qhost("run " + std::string(EXPERIMENTS_DIR) + "/fmnist/" + experiment + " --out " + dir +
                 " --set 'train.init_from=\"\"' --set train.epochs=1 --set train.max_steps_per_epoch=250"
                 " --set data.batch_size=64 --set optimizer.lr=0.1 --set scheduler.warmup_epochs=0.0"
                 " --set experiment.threads=1 --set experiment.log_every=50 " + sets);
  ASSERT_EQ(r.code, 0) << r.output;
  std::cout << r.output.substr(r.output.size() > 600 ? r.output.size() - 600 : 0) << "\n";

  const std::string logits = dir + "/qhost_logits.npy";
  r = qhost("eval " + dir + "/best.h5 --max-batches " + kEvalBatches + " --dump-logits " + logits);
  ASSERT_EQ(r.code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("top1 ([0-9.]+)\ntop5 [0-9.]+\nloss [0-9.]+\nsamples ([0-9]+)")))
      << r.output;
  EXPECT_EQ(m[2].str(), kSamples) << r.output;
  const double top1 = std::stod(m[1].str());
  std::cout << name << ": qhost top-1 " << top1 << " % on the first " << kSamples << " test images\n";
  EXPECT_GT(top1, 70.0) << "the model did not learn (chance is 10 %):\n" << r.output;
}

/// Trains and evaluates (train_and_eval), exports to ONNX, and compares ONNX
/// Runtime's top-1 with qhost's on the first 1,000 test images.
void check_method(const std::string& name, const std::string& experiment, const std::string& sets) {
  if (!fs::exists(kFmnist + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << kFmnist << " (Debian package dataset-fashion-mnist)";
  const std::string ort_dir = std::string(EXPORT_DIR) + "/ort";
  ASSERT_TRUE(fs::exists(ort_dir + "/node_modules/onnxruntime-node"))
      << "onnxruntime-node is not installed in " << ort_dir << ": run tools/install-deps.sh";
  ASSERT_NO_FATAL_FAILURE(train_and_eval(name, experiment, sets));
  const std::string dir = kWork + "/" + name;
  const std::string logits = dir + "/qhost_logits.npy";
  const std::string model = dir + "/model.onnx";
  auto r = qhost("export " + dir + " -o " + model);
  ASSERT_EQ(r.code, 0) << r.output;
  // Quickstart's mean and std (experiments/quickstart.toml [data]).
  r = run("node", ort_dir + "/idx_agree.js " + model + " " + logits + " " + kFmnist + " " + kSamples + " 0.2860 0.3530");
  std::cout << r.output;
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("top-1 differs on 0 of " + kSamples), std::string::npos) << r.output;
}

}  // namespace

TEST(ExportFmnist, Lsq) { check_method("lsq", "lsq_2bit.toml", ""); }

// The integer model of a network that has learned: LSQ 2/2 (codes -3, -1, 1, 3
// in 2 bits), folded batch norms checked against the checkpoint, and the
// integer model's logits those of the checkpoint, element by element. Not on
// every sample: LSQ's forward rounds (x / s) * n, the integer form x / step,
// and an activation within float rounding of a rounding boundary then takes
// the neighbouring code (README "Deploy"), which a 2-bit network carries to
// that sample's logits. Measured: 3 of 1,000 samples (one argmax), by up to
// 0.37; the other 997 within 5.8e-6. Up to 10 such samples are allowed; a
// wrong scale, code or norm moves them all.
TEST(ExportFmnist, QtoolLogits) {
  if (!fs::exists(kFmnist + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << kFmnist << " (Debian package dataset-fashion-mnist)";
  ASSERT_NO_FATAL_FAILURE(train_and_eval("qtool_lsq", "lsq_2bit.toml", ""));
  const std::string dir = kWork + "/qtool_lsq", model = dir + "/model.qtool.h5";
  auto r = qhost("export " + dir + " --format qtool -o " + model);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string check = std::string(EXPORT_DIR) + "/check_qtool.py ";
  r = run("/usr/bin/python3", check + model + " --weight-codes -3,-1,1,3 --bits 2 --bn-from " + dir + "/best.h5");
  std::cout << r.output;
  EXPECT_EQ(r.code, 0) << r.output;
  r = qhost("eval " + model + " --max-batches " + kEvalBatches + " --dump-logits " + dir + "/integer_logits.npy");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("/usr/bin/python3", check + "--logits " + dir + "/qhost_logits.npy " + dir + "/integer_logits.npy 10");
  std::cout << r.output;
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("logits OK: " + kSamples + " samples"), std::string::npos) << r.output;
}

TEST(ExportFmnist, Dorefa) { check_method("dorefa", "dorefa_2bit.toml", ""); }

TEST(ExportFmnist, Pact) { check_method("pact", "pact_2bit.toml", ""); }

// XNOR activations have no exact ONNX form (refused, see export_onnx_test):
// XNOR weights (per output channel, var-mean, as fmnist/xnor_1bit.toml) with
// lsq_2bit.toml's LSQ 2-bit activations.
TEST(ExportFmnist, XnorWeights) {
  check_method("xnor", "lsq_2bit.toml",
               "--set quant.weight.type=xnor --set quant.weight.bits=1 --set quant.weight.quant_group=0");
}
