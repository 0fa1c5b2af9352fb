// `qhost export` end to end (README "Deploy"): ResNet-20 smoke-trained with a
// quantization method, exported to ONNX, checked by onnx.checker and by
// structural checks (check_onnx.py: only standard operators, weight codes,
// activation levels), then run by ONNX Runtime on the reference batch qhost
// wrote, whose logits must match qhost's fake-quantized ones within
// 1e-4 * (1 + max|logit|) (ort/ort_check.js). Learned, unequally spaced
// levels (LQ-Net, non-uniform, XNOR activations) are a Gather of a level table
// (weights) and comparisons with Where (activations). Forms without an exact
// standard-operator form are refused with the layer and the method named.
#include "run_qhost.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;

namespace {

using Result = qtool_test::QhostResult;

Result run(const std::string& exe, const std::string& args) { return qtool_test::run_qhost(exe, EXPORT_WORK, args); }
Result qhost(const std::string& args) { return run(QHOST_EXE, args); }

const std::string kLsqAct = " --set quant.activation.type=lsq --set quant.activation.bits=2";

/// Smoke-trains r20.toml with `sets` into a fresh run folder; returns the folder.
std::string train(const std::string& name, const std::string& sets, const std::string& experiment = "r20.toml") {
  const std::string dir = std::string(EXPORT_WORK) + "/" + name;
  fs::remove_all(dir);
  auto r = qhost("run " + std::string(EXPORT_DIR) + "/" + experiment + " --smoke --out " + dir + " " + sets);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/best.h5")) << r.output;
  return dir;
}

/// onnx.checker and the structural checks.
void check_model(const std::string& model, const std::string& check_args) {
  auto r = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_onnx.py " + model + " " + check_args);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("checker OK"), std::string::npos) << r.output;
  std::cout << r.output;
}

/// ONNX Runtime against qhost's logits of the reference batch.
Result ort_check(const std::string& model, const std::string& prefix, const std::string& rtol = "") {
  const std::string ort_dir = std::string(EXPORT_DIR) + "/ort";
  if (!fs::exists(ort_dir + "/node_modules/onnxruntime-node"))
    return {-1, "onnxruntime-node is not installed in " + ort_dir + ": run tools/install-deps.sh"};
  return run("node", ort_dir + "/ort_check.js " + model + " " + prefix + " " + rtol);
}

void check_runtime(const std::string& model, const std::string& prefix) {
  auto r = ort_check(model, prefix);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(": OK"), std::string::npos) << r.output;
  std::cout << r.output;
}

/// Exports `target` (a run folder or checkpoint) with a reference batch, then both checks.
void export_and_check(const std::string& dir, const std::string& target, const std::string& export_args,
                      const std::string& check_args) {
  const std::string model = dir + "/model.onnx";
  auto r = qhost("export " + target + " -o " + model + " --reference " + dir + "/ref " + export_args);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::exists(model)) << r.output;
  check_model(model, check_args);
  check_runtime(model, dir + "/ref");
}

/// Runs `qhost export` expecting a refusal with exit code `code` and every `needles` in its output.
void expect_refused(const std::string& args, int code, const std::vector<std::string>& needles) {
  auto r = qhost("export " + args);
  EXPECT_EQ(r.code, code) << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "missing '" << n << "' in\n" << r.output;
}

}  // namespace

// LSQ 2/2, one step per layer: only the codes -3, -1, 1, 3 and 4 activation levels.
TEST(ExportOnnx, LsqPerTensor) {
  const auto dir = train("lsq_tensor", "--set quant.weight.type=lsq --set quant.weight.bits=2 "
                                       "--set quant.weight.quant_group=1" + kLsqAct);
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --weight-scales tensor --activation-levels 4");
  // The comparison has teeth: ONNX Runtime's logits are not bit-identical, and
  // a tolerance of 1e-9 * (1 + max|logit|) fails.
  auto strict = ort_check(dir + "/model.onnx", dir + "/ref", "1e-9");
  EXPECT_EQ(strict.code, 1) << strict.output;
  EXPECT_NE(strict.output.find("FAILED"), std::string::npos) << strict.output;
  // A signed LSQ activation range with 4 levels has no level at 0: refused, naming the layer.
  expect_refused(dir + " -o " + dir + "/signed.onnx --set 'quant.activation.half_range=\"false\"'", 2,
                 {"error[config]", "quantizer/lsq", "layer1.0.conv1.0", "lsq activation quantizer has no exact ONNX form",
                  "no level at 0"});
  EXPECT_FALSE(fs::exists(dir + "/signed.onnx"));
}

// LSQ 2/2 per output channel with var-mean weight standardisation (applied at
// export), opset 17, a fixed batch of 4, the checkpoint named directly.
TEST(ExportOnnx, LsqPerChannelVarMean) {
  const auto dir = train("lsq_channel", "--set quant.weight.type=lsq --set quant.weight.bits=2 "
                                        "--set quant.weight.adaptive=var-mean" + kLsqAct);
  export_and_check(dir, dir + "/last.h5", "--opset 17 --batch 4",
                   "--weight-codes -3,-1,1,3 --weight-scales channel --activation-levels 4 --batch 4");
}

// Output quantizers after each layer: signed LSQ with 3 levels is the int8
// range [-1, 1] with step 2s/2 (an odd number of levels has a level at 0).
TEST(ExportOnnx, LsqTernaryOutputs) {
  const auto dir = train("lsq_output", "--set quant.weight.type=lsq --set quant.weight.bits=2" + kLsqAct +
                                           " --set quant.output.type=lsq --set quant.output.levels=3");
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --activation-levels 3,4");
}

// Stem and classifier quantized too: the stem's activation quantizer sees the
// network input, the head is Gemm on a dequantized [out, in] weight (the
// quantizer saw it as [1, 1, out, in]) after a QDQ pair on its 2-D input.
TEST(ExportOnnx, LsqQuantizedStemAndHead) {
  const auto dir = train("lsq_stem_head", "--set quant.weight.type=lsq --set quant.weight.bits=2" + kLsqAct +
                                              " --set quant.quantize_stem=true --set quant.quantize_head=true");
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --activation-levels 4");
}

// The torchvision-structured ResNet-18 (max-pool stem, 1x1 downsampling
// shortcuts), LSQ 2/2 per channel.
TEST(ExportOnnx, TorchResNet18Lsq) {
  const auto dir = train("torch_r18", "--set quant.weight.type=lsq --set quant.weight.bits=2" + kLsqAct,
                         "torch_r18.toml");
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --weight-scales channel --activation-levels 4");
}

TEST(ExportOnnx, Dorefa) {
  const auto dir = train("dorefa", "--set quant.weight.type=dorefa --set quant.weight.bits=2 "
                                   "--set quant.activation.type=dorefa --set quant.activation.bits=2");
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --weight-scales tensor --activation-levels 4");
  // Weight levels 2k * 0.7 / 3 - 1 are no integer multiples of one step.
  expect_refused(dir + " -o " + dir + "/b07.onnx --set quant.weight.boundary=0.7", 2,
                 {"quantizer/dorefa", "layer1.0.conv1.0", "dorefa weight quantizer has no exact ONNX form"});
}

TEST(ExportOnnx, Pact) {
  const auto dir = train("pact", "--set quant.weight.type=pact --set quant.weight.bits=2 "
                                 "--set quant.activation.type=pact --set quant.activation.bits=2");
  export_and_check(dir, dir, "", "--weight-codes -3,-1,1,3 --weight-scales tensor --activation-levels 4");
}

// XNOR weights (+-1 times mean|w| per output channel) with LSQ 2-bit activations.
TEST(ExportOnnx, XnorWeights) {
  const auto dir = train("xnor", "--set quant.weight.type=xnor" + kLsqAct);
  export_and_check(dir, dir, "", "--weight-codes -1,1 --weight-scales channel --activation-levels 4");
}

// Full-precision weights, XNOR activations: sign(x) with sign(0) = +1 is one
// threshold 0 that a value equal to it passes (Less + Where), and the padded
// zeros are binarised to +1 as in evaluation (Pad before the comparison). The
// smoke training stays inside the XNOR warm-up (forward = identity): two
// binarising steps leave NaN in the network's first batch norm, which the
// checkpoint reader then refuses; export binarises with stable = 0.
TEST(ExportOnnx, XnorActivations) {
  const auto dir = train("xnor_act", "--set quant.activation.type=xnor --set quant.activation.stable=100");
  export_and_check(dir, dir, "--set quant.activation.stable=0", "--threshold-levels 2");
  // Inside the warm-up forward returns its input: refused.
  expect_refused(dir + " -o " + dir + "/warmup.onnx", 2,
                 {"error[config]", "quantizer/xnor", "layer1.0.conv1.0", "warm-up"});
  // A per-sample scale (mean |x| over the channels) is no constant level table: refused.
  expect_refused(dir + " -o " + dir + "/channel.onnx --set quant.activation.stable=0 "
                       "--set 'quant.activation.custom=\"channel\"'",
                 2, {"error[config]", "quantizer/xnor", "layer1.0.conv1.0: ",
                     "xnor activation quantizer has no exact ONNX form", "custom = channel"});
  EXPECT_FALSE(fs::exists(dir + "/warmup.onnx"));
  EXPECT_FALSE(fs::exists(dir + "/channel.onnx"));
}

// LQ-Net 2/2: weights are uint8 codes (LQ-Net's encoding, 4 values) gathered
// from one level table per output channel; activations are three thresholds
// with strict Greater, as lq_assign compares.
TEST(ExportOnnx, Lqnet) {
  const auto dir = train("lqnet", "--set quant.weight.type=lqnet --set quant.weight.bits=2 "
                                  "--set quant.activation.type=lqnet --set quant.activation.bits=2");
  export_and_check(dir, dir, "", "--level-codes 4 --threshold-levels 4");
  // The code check has teeth: the same model fails a claim of 2 levels.
  auto r = run("/usr/bin/python3", std::string(EXPORT_DIR) + "/check_onnx.py " + dir + "/model.onnx --level-codes 2");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("expected [0, 2)"), std::string::npos) << r.output;
  // Activations normalised by each sample's mean have no constant thresholds: refused.
  expect_refused(dir + " -o " + dir + "/mean.onnx --set 'quant.activation.adaptive=\"mean\"'", 2,
                 {"error[config]", "quantizer/lqnet", "layer1.0.conv1.0: ",
                  "lqnet activation quantizer has no exact ONNX form", "adaptive = mean"});
  EXPECT_FALSE(fs::exists(dir + "/mean.onnx"));
}

// Non-uniform (FATNN) 2/2: ternary weights are the codes -1, 0, 1 (QDQ);
// 2-bit activations are integer levels 0..3 above thresholds found by
// bisection through the quantizer's own kernel (Greater + Where).
TEST(ExportOnnx, NonUniform) {
  const auto dir = train("nonuniform", "--set quant.weight.type=nonuniform --set quant.weight.levels=3 "
                                       "--set 'quant.weight.adaptive=\"var-mean\"' --set quant.weight.scale=1.0 "
                                       "--set quant.activation.type=nonuniform --set quant.activation.bits=2 "
                                       "--set quant.activation.scale=3.0");
  export_and_check(dir, dir, "", "--weight-codes -1,0,1 --threshold-levels 4");
}

TEST(ExportOnnx, UsageErrors) {
  const std::string work = EXPORT_WORK;
  expect_refused(work + "/none.h5 -o " + work + "/x.onnx", 5, {"error[checkpoint]", "none.h5"});
  expect_refused(work + "/none.h5 -o " + work + "/x.onnx --opset 12", 1, {"error[usage]", "--opset", "[13, 17]"});
  expect_refused(work + "/none.h5 -o " + work + "/x.onnx --batch 0", 1, {"error[usage]", "--batch"});
  expect_refused(work + "/none.h5", 1, {"error[usage]", "-o"});
}
