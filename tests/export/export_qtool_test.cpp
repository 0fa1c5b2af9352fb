// `qhost export --format qtool` end to end (docs/integer-model.md): ResNet-20
// smoke-trained with a quantization method, exported as an integer model,
// checked by check_qtool.py (h5py; its own decoder of the documented layout
// and bit order, and the folded batch norms recomputed from the checkpoint),
// then evaluated by `qhost eval` next to the checkpoint it came from: the same
// top-1 and top-5, the same loss, and the same logits sample by sample (same
// argmax, max |diff| <= 1e-5 (1 + max |logit|)). Uniform methods store codes
// and scales, LQ-Net and the non-uniform quantizer level tables and threshold
// forms. Damaged files end in a clean error[checkpoint] naming the dataset;
// training commands refuse an integer model by name.
#include "run_qhost.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

using Result = qtool_test::QhostResult;

const std::string kWork = std::string(EXPORT_WORK) + "/qtool";

Result run(const std::string& exe, const std::string& args) { return qtool_test::run_qhost(exe, kWork, args); }
Result qhost(const std::string& args) { return run(QHOST_EXE, args); }

const std::string kLsqAct = " --set quant.activation.type=lsq --set quant.activation.bits=2";

/// Smoke-trains r20.toml with `sets` into a fresh run folder; returns the folder.
std::string train(const std::string& name, const std::string& sets) {
  const std::string dir = kWork + "/" + name;
  fs::remove_all(dir);
  auto r = qhost("run " + std::string(EXPORT_DIR) + "/r20.toml --smoke --out " + dir + " " + sets);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/best.h5")) << r.output;
  return dir;
}

/// `qhost eval`'s printed figures: top1, top5, loss, samples; the logits go to `logits` (.npy).
std::map<std::string, double> eval(const std::string& file, const std::string& logits) {
  auto r = qhost("eval " + file + " --dump-logits " + logits);
  EXPECT_EQ(r.code, 0) << r.output;
  std::map<std::string, double> out;
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string key;
    double v = 0;
    if ((l >> key >> v) && (key == "top1" || key == "top5" || key == "loss" || key == "samples")) out[key] = v;
  }
  EXPECT_EQ(out.size(), 4u) << r.output;
  return out;
}

Result check(const std::string& model, const std::string& args) {
  return run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_qtool.py " + model + " " + args);
}

/// Exports `checkpoint` (by default the run folder's best.h5) as an integer
/// model, checks it (folded batch norms against the checkpoint), and evaluates
/// both files: the same figures and the same logits.
std::string round_trip(const std::string& dir, const std::string& check_args, std::string checkpoint = "") {
  if (checkpoint.empty()) checkpoint = dir + "/best.h5";
  const std::string model = dir + "/model.qtool.h5";
  auto r = qhost("export " + checkpoint + " --format qtool -o " + model);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(model)) << r.output;
  auto c = check(model, check_args + " --bn-from " + checkpoint);
  EXPECT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("check_qtool OK"), std::string::npos) << c.output;
  std::cout << c.output;
  const auto a = eval(checkpoint, dir + "/checkpoint_logits.npy"), b = eval(model, dir + "/integer_logits.npy");
  c = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_qtool.py --logits " + dir + "/checkpoint_logits.npy " +
                                  dir + "/integer_logits.npy");
  EXPECT_EQ(c.code, 0) << c.output;
  std::cout << c.output;
  EXPECT_EQ(a.at("samples"), b.at("samples"));
  EXPECT_EQ(a.at("top1"), b.at("top1"));
  EXPECT_EQ(a.at("top5"), b.at("top5"));
  EXPECT_NEAR(a.at("loss"), b.at("loss"), 1e-5 * (1 + std::abs(a.at("loss"))));
  std::cout << "checkpoint top1 " << a.at("top1") << " loss " << a.at("loss") << "; integer model top1 "
            << b.at("top1") << " loss " << b.at("loss") << "\n";
  return model;
}

void expect_error(const Result& r, int code, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.code, code) << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in\n" << r.output;
}

}  // namespace

// LSQ 2/2 per tensor: weight codes within -3, -1, 1, 3, packed 2 bits each.
TEST(ExportQtool, LsqRoundTrip) {
  const auto dir = train("lsq", "--set quant.weight.type=lsq --set quant.weight.bits=2 "
                                "--set quant.weight.quant_group=1" + kLsqAct);
  const auto model = round_trip(dir, "--weight-codes -3,-1,1,3 --bits 2");
  // An integer model is no training checkpoint: export (and resume) refuse it by name.
  expect_error(qhost("export " + model + " -o " + dir + "/again.onnx"), 5,
               {"error[checkpoint]", "model.qtool.h5:/meta/content", "integer-model, not a training checkpoint"});
}

TEST(ExportQtool, DorefaRoundTrip) {
  const auto dir = train("dorefa", "--set quant.weight.type=dorefa --set quant.weight.bits=2 "
                                   "--set quant.activation.type=dorefa --set quant.activation.bits=2");
  round_trip(dir, "--weight-codes -3,-1,1,3 --bits 2");
}

TEST(ExportQtool, PactRoundTrip) {
  const auto dir = train("pact", "--set quant.weight.type=pact --set quant.weight.bits=2 "
                                 "--set quant.activation.type=pact --set quant.activation.bits=2");
  round_trip(dir, "--weight-codes -3,-1,1,3 --bits 2");
}

// XNOR weights: codes -1 and 1 pack into one bit (offset -1, stride 2).
TEST(ExportQtool, XnorRoundTrip) {
  const auto dir = train("xnor", "--set quant.weight.type=xnor" + kLsqAct);
  round_trip(dir, "--weight-codes -1,1 --bits 1");
}

// LQ-Net 2/2: weights are level indices 0..3 (2 bits) into one table per
// output channel; activations are threshold forms of 4 levels.
TEST(ExportQtool, LqnetRoundTrip) {
  const auto dir = train("lqnet", "--set quant.weight.type=lqnet --set quant.weight.bits=2 "
                                  "--set quant.activation.type=lqnet --set quant.activation.bits=2");
  const auto model = round_trip(dir, "--level-codes 4 --threshold-levels 4 --bits 2");
  // Damaged threshold forms: a layout-1 stamp (threshold forms came with 2) and a NaN threshold.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version1", "is a threshold form in a file of layout 1"}, {"nan-threshold", "holds NaN"}};
  for (const auto& [how, needle] : cases) {
    const std::string bad = dir + "/" + how + ".qtool.h5";
    auto m = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_qtool.py " + model + " --corrupt " + how +
                                         " " + bad);
    ASSERT_EQ(m.code, 0) << m.output;
    const std::string layer = m.output.substr(0, m.output.find('\n'));
    expect_error(qhost("eval " + bad), 5,
                 {"error[checkpoint]", bad + ":/integer/" + layer + "/activation/thresholds", needle});
  }
}

// Non-uniform (FATNN) 2/2: ternary weights are the affine codes -1, 0, 1 (2
// bits); 2-bit activations are threshold forms of 4 levels.
TEST(ExportQtool, NonUniformRoundTrip) {
  const auto dir = train("nonuniform", "--set quant.weight.type=nonuniform --set quant.weight.levels=3 "
                                       "--set 'quant.weight.adaptive=\"var-mean\"' --set quant.weight.scale=1.0 "
                                       "--set quant.activation.type=nonuniform --set quant.activation.bits=2 "
                                       "--set quant.activation.scale=3.0");
  round_trip(dir, "--weight-codes -1,0,1 --threshold-levels 4 --bits 2");
}

// XNOR activations: sign(x) with sign(0) = +1, one threshold 0 that a value
// at it passes (upper_at_ties), and the convolutions' zero padding binarised
// too. Smoke training stays inside the warm-up (binarising steps leave NaN in
// the first batch norm, export_onnx_test), and the integer model takes no
// --set: the checkpoint's stored configuration is edited to stable = 0, as
// the ONNX test's --set does, and that checkpoint is the reference.
TEST(ExportQtool, XnorActivationsRoundTrip) {
  const auto dir = train("xnor_act", "--set quant.activation.type=xnor --set quant.activation.stable=100");
  const std::string binarised = dir + "/binarised.h5";
  auto r = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_qtool.py --edit-toml " + dir +
                                       "/best.h5 'stable = 100' 'stable = 0' " + binarised);
  ASSERT_EQ(r.code, 0) << r.output;
  round_trip(dir, "--threshold-levels 2", binarised);
}

// A training command refuses an integer model as its starting point, naming the file.
TEST(ExportQtool, InitFromRefused) {
  const auto dir = train("init_from", "--set quant.weight.type=lsq --set quant.weight.bits=2" + kLsqAct);
  const std::string model = dir + "/model.qtool.h5";
  ASSERT_EQ(qhost("export " + dir + " --format qtool -o " + model).code, 0);
  expect_error(qhost("run " + std::string(EXPORT_DIR) + "/r20.toml --smoke --out " + dir + "/again --set " +
                     "'train.init_from=\"" + model + "\"' --set quant.weight.type=lsq --set quant.weight.bits=2" +
                     kLsqAct),
               5, {"error[checkpoint]", model + ":/meta/content", "not a training checkpoint",
                   "resume, init_from and teachers need the checkpoint it was exported from"});
}

// Damaged packed codes and scales: exit code 5, the file and dataset named.
// 3-bit weights and a quantized stem 12 channels wide: its 324 codes leave 4
// unused bits in the last byte (the default widths are multiples of 16).
TEST(ExportQtool, DamagedFilesRefused) {
  const auto dir = train("damaged", "--set quant.weight.type=lsq --set quant.weight.bits=3" + kLsqAct +
                                        " --set quant.quantize_stem=true --set model.width_alpha=0.1875");
  // Intact, it round-trips (LSQ per output channel, 3 bits).
  const std::string model = round_trip(dir, "--bits 3");
  struct Case {
    std::string how;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"truncate", {"/weight/codes", "bytes;", "(truncated or corrupt)"}},
      {"padding", {"/weight/codes", "has bits set past its last code"}},
      {"nan", {"/weight/scale", "holds NaN or infinite values"}},
      {"shape", {"/weight/codes", "must be uint8 [bytes] of at most the layer's codes at 16 bits"}},
  };
  for (const auto& c : cases) {
    const std::string bad = dir + "/" + c.how + ".qtool.h5";
    auto m = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_qtool.py " + model + " --corrupt " + c.how +
                                         " " + bad);
    ASSERT_EQ(m.code, 0) << m.output;
    std::string layer = m.output.substr(0, m.output.find('\n'));
    auto needles = c.needles;
    needles.push_back("error[checkpoint]");
    needles.push_back(bad + ":/integer/" + layer);
    expect_error(qhost("eval " + bad), 5, needles);
  }
}

TEST(ExportQtool, UsageErrors) {
  expect_error(qhost("export " + kWork + "/none.h5 -o " + kWork + "/x.h5 --format tflite"), 1,
               {"error[usage]", "--format", "neither onnx nor qtool"});
  expect_error(qhost("export " + kWork + "/none.h5 -o " + kWork + "/x.h5 --format qtool --set a.b=1"), 1,
               {"error[usage]", "--set", "not supported with --format qtool"});
}
