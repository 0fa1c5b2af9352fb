// `[[schedule]]`, `qhost sweep` and `qhost report` end to end: the qhost
// binary on tiny synthetic runs (tiny_quant.toml, about a second each).
#include "checkpoint/checkpoint.hpp"
#include "files.hpp"
#include "run_qhost.hpp"
#include "train/optimizer.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using Result = qtool_test::QhostResult;
using qtool_test::fresh_dir;
using qtool_test::read_text;

// Runs qhost with `args` (and optional environment assignments), capturing stdout+stderr.
Result run_qhost(const std::string& args, const std::string& env = "") {
  return qtool_test::run_qhost(QHOST_EXE, SWEEP_WORK, args, env);
}

std::string src(const std::string& f) { return std::string(SWEEP_DIR) + "/" + f; }

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// The "lr" of each train_epoch line of a metrics.jsonl, in order.
std::vector<double> epoch_lrs(const std::string& metrics) {
  std::vector<double> out;
  const std::regex lr_re("\"lr\": ([0-9.eE+-]+)");
  for (const auto& l : lines_of(metrics)) {
    if (l.find("\"kind\": \"train_epoch\"") == std::string::npos) continue;
    std::smatch m;
    if (std::regex_search(l, m, lr_re)) out.push_back(std::stod(m[1]));
  }
  return out;
}

}  // namespace

TEST(Schedule, ChangesLrAtTheRightEpoch) {
  const auto dir = fresh_dir(SWEEP_WORK, "schedule");
  auto r = run_qhost("run " + src("schedule.toml") + " --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto lrs = epoch_lrs(dir + "/metrics.jsonl");
  ASSERT_EQ(lrs.size(), 3u) << r.output;
  EXPECT_NEAR(lrs[0], 0.05, 1e-9);
  EXPECT_NEAR(lrs[1], 0.05, 1e-9);  // epoch 1 changes weight decay and momentum only
  EXPECT_NEAR(lrs[2], 0.01, 1e-9);
  // Every step of epoch 2 (and none before) ran at the new lr.
  const std::regex step_re("\"kind\": \"step\", \"epoch\": ([0-9]+).*\"lr\": ([0-9.eE+-]+)");
  int steps = 0;
  for (const auto& l : lines_of(dir + "/metrics.jsonl")) {
    std::smatch m;
    if (!std::regex_search(l, m, step_re)) continue;
    ++steps;
    EXPECT_NEAR(std::stod(m[2]), std::stoi(m[1]) == 2 ? 0.01 : 0.05, 1e-9) << l;
  }
  EXPECT_EQ(steps, 6);
  // The changes are logged (log.txt) and recorded (metrics.jsonl) at their epochs.
  std::ifstream in(dir + "/metrics.jsonl");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string metrics = ss.str();
  EXPECT_EQ(count(metrics, "\"kind\": \"schedule\""), 3u) << metrics;
  EXPECT_NE(metrics.find("\"kind\": \"schedule\", \"epoch\": 2, \"change\": \"optimizer.lr: 0.05 -> 0.01"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("\"kind\": \"schedule\", \"epoch\": 1, \"change\": \"optimizer.weight_decay: 0.0005 -> 0"),
            std::string::npos)
      << metrics;
  std::ifstream log(dir + "/log.txt");
  std::stringstream ls;
  ls << log.rdbuf();
  EXPECT_NE(ls.str().find("optimizer.momentum: 0.9 -> 0.5"), std::string::npos) << ls.str();
  // resolved.toml keeps the schedule (sorted by epoch) and reloads to the same run.
  auto c = run_qhost("check " + dir + "/resolved.toml --print");
  EXPECT_EQ(c.code, 0) << c.output;
  const auto first = c.output.find("[[schedule]]\nepoch = 1\n"), second = c.output.find("[[schedule]]\nepoch = 2\n");
  ASSERT_NE(first, std::string::npos) << c.output;
  ASSERT_NE(second, std::string::npos) << c.output;
  EXPECT_LT(first, second) << c.output;
  EXPECT_NE(c.output.find("\"optimizer.lr\" = 0.01"), std::string::npos) << c.output;
}

// The lr of every "step" line of a metrics.jsonl, by epoch.
std::vector<std::vector<double>> step_lrs(const std::string& metrics) {
  std::vector<std::vector<double>> out;
  const std::regex step_re("\"kind\": \"step\", \"epoch\": ([0-9]+).*\"lr\": ([0-9.eE+-]+)");
  for (const auto& l : lines_of(metrics)) {
    std::smatch m;
    if (!std::regex_search(l, m, step_re)) continue;
    const size_t e = std::stoul(m[1]);
    if (out.size() <= e) out.resize(e + 1);
    out[e].push_back(std::stod(m[2]));
  }
  return out;
}

TEST(Schedule, NewLrScalesTheSchedulersCurveFromItsEpoch) {
  const std::string cosine =
      " --set 'plugins.load=[\"synthetic\", \"resnet\", \"lsq\", \"dorefa\", \"cosine\"]'"
      " --set 'scheduler={type = \"cosine\"}'";
  const auto with = fresh_dir(SWEEP_WORK, "schedule_cosine"), without = fresh_dir(SWEEP_WORK, "cosine_only");
  auto r = run_qhost("run " + src("schedule.toml") + cosine + " --out " + with);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule.toml") + cosine + " --set 'schedule=[]' --out " + without);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto a = step_lrs(with + "/metrics.jsonl"), b = step_lrs(without + "/metrics.jsonl");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    ASSERT_EQ(a[e].size(), 2u);
    ASSERT_EQ(b[e].size(), 2u);
    // Epochs 0 and 1 follow the cosine curve of base lr 0.05; epoch 2 the curve of 0.01.
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(a[e][i], b[e][i] * (e == 2 ? 0.01 / 0.05 : 1.0), 1e-7) << e << " " << i;
  }
  EXPECT_LT(b[2][1], b[2][0]);  // the curve still decays inside the epoch
}

TEST(Schedule, AResumedRunReappliesTheChangesOfPastEpochs) {
  // Stopped after epoch 2 of 3 and resumed: the epoch-1 weight decay and momentum
  // changes must be in force again in the new process, or the weights differ.
  const auto full = fresh_dir(SWEEP_WORK, "resume_full"), parted = fresh_dir(SWEEP_WORK, "resume_parted");
  auto r = run_qhost("run " + src("schedule.toml") + " --out " + full);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule.toml") + " --out " + parted, "QTOOL_TEST_STOP_AFTER_EPOCHS=2");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule.toml") + " --resume --out " + parted);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("optimizer.momentum: 0.9 -> 0.5"), std::string::npos) << r.output;
  const auto a = qhost::read_checkpoint(full + "/last.h5"), b = qhost::read_checkpoint(parted + "/last.h5");
  EXPECT_EQ(a.meta.epoch, 3);
  EXPECT_EQ(b.meta.epoch, 3);
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    ASSERT_EQ(a.model[i].first, b.model[i].first);
    EXPECT_TRUE(a.model[i].second.equal(b.model[i].second)) << a.model[i].first;
  }
}

TEST(Schedule, OptimizerUpdateHyperChangesTheGroupsThatFollowTheGlobalValues) {
  torch::nn::Linear lin(3, 2);
  qhost::OptimizerSettings s;
  s.momentum = 0.0;
  s.rules.lr = 0.1;
  s.rules.weight_decay = 0.0;
  qhost::Optimizer opt(*lin, s);
  const auto w0 = lin->weight.detach().clone(), b0 = lin->bias.detach().clone();
  // Zero gradients: a step changes the parameters by weight decay only.
  lin->weight.mutable_grad() = torch::zeros_like(lin->weight);
  lin->bias.mutable_grad() = torch::zeros_like(lin->bias);
  EXPECT_DOUBLE_EQ(opt.update_hyper("weight_decay", 0.5), 0.0);
  opt.step();
  EXPECT_TRUE(torch::allclose(lin->weight.detach(), w0 * (1.0 - 0.1 * 0.5)));
  EXPECT_TRUE(lin->bias.detach().equal(b0));  // 1-D: exempt unless decay_small
  EXPECT_DOUBLE_EQ(opt.update_hyper("lr", 0.2), 0.1);
  EXPECT_DOUBLE_EQ(opt.current_lr(), 0.2);
  EXPECT_DOUBLE_EQ(opt.update_hyper("momentum", 0.9), 0.0);
  qhost::OptimizerSettings adam = s;
  adam.type = "adam";
  qhost::Optimizer opt2(*lin, adam);
  EXPECT_THROW(opt2.update_hyper("momentum", 0.5), qsdk::Error);
}

TEST(Schedule, CheckRejectsUnknownKeysOptionsAndValuesWithTheirLines) {
  auto r = run_qhost("check " + src("schedule_bad.toml"));
  EXPECT_NE(r.code, 0) << r.output;
  // Quantizer options are checked against the quantizer's own schema.
  EXPECT_NE(r.output.find("schedule_bad.toml:8:9: schedule[0].set.quant.weight.bitz: quantizer 'lsq' has no option "
                          "'bitz' (hint: did you mean 'bits'?)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("schedule_bad.toml:12:9: schedule[1].set.optimizer.lrr: 'optimizer.lrr' is not a key of the "
                          "resolved configuration (hint: did you mean 'optimizer.lr'?)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("schedule_bad.toml:16:9: schedule[2].set.quant.activation.bits: 9 is outside [1, 8]"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("schedule_bad.toml:20:9: schedule[3].set.quant.output.bits: [quant.output] is not quantized"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("schedule_bad.toml:20:34: schedule[3].set.quant.activation.grad_type: \"Triangle\" is not "
                          "one of \"none\", \"STE-scale\""),
            std::string::npos)
      << r.output;
  // A key outside the supported families lists them.
  auto u = run_qhost("check " + src("schedule.toml") + " --set 'schedule=[{epoch = 0, set = {\"train.epochs\" = 2}}]'");
  EXPECT_NE(u.code, 0) << u.output;
  EXPECT_NE(u.output.find("'train.epochs' cannot be changed by a schedule"), std::string::npos) << u.output;
  EXPECT_NE(u.output.find("supported keys: optimizer.lr, optimizer.weight_decay, optimizer.momentum, "
                          "quant.<weight|activation|output>.<option>"),
            std::string::npos)
      << u.output;
  // The type is not an option; an override entry that does not exist is named.
  auto t = run_qhost("check " + src("schedule_quant.toml") +
                     " --set 'schedule=[{epoch = 1, set = {\"quant.weight.type\" = \"dorefa\", "
                     "\"quant.override[5].activation.bits\" = 2}}]'");
  EXPECT_NE(t.code, 0) << t.output;
  EXPECT_NE(t.output.find("quant.weight.type: a schedule cannot change the quantizer type"), std::string::npos)
      << t.output;
  EXPECT_NE(t.output.find("there is no [[quant.override]] entry 5"), std::string::npos) << t.output;
}

TEST(Schedule, CheckRejectsBadValuesAndEpochs) {
  const std::string s = src("schedule.toml");
  // An epoch past the end never applies; a negative lr is out of range; a string is the wrong type.
  auto r = run_qhost("check " + s +
                     " --set 'schedule=[{epoch = 3, set = {\"optimizer.lr\" = -1.0}}, "
                     "{epoch = 0, set = {\"optimizer.momentum\" = \"high\"}}]'");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("schedule[0].epoch: 3 is outside [0, 2]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("schedule[0].set.optimizer.lr: -1.0 is out of range"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("schedule[1].set.optimizer.momentum: expected float"), std::string::npos) << r.output;
  // The good file passes.
  auto ok = run_qhost("check " + s);
  EXPECT_EQ(ok.code, 0) << ok.output;
}

// Checkpoint tensor `name`; fails the test when it is missing.
torch::Tensor tensor_of(const qhost::CheckpointData& c, const std::string& name) {
  for (const auto& [n, t] : c.model)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name << " in the checkpoint";
  return torch::zeros({1});
}

// Number of quantization levels each activation quantizer of a checkpoint has,
// by layer path prefix ("layer1", "layer2", "layer3").
std::map<std::string, std::set<int>> activation_levels(const qhost::CheckpointData& c) {
  std::map<std::string, std::set<int>> out;
  const std::string suffix = ".quant_activation.level_num";
  for (const auto& [n, t] : c.model)
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out[n.substr(0, n.find('.'))].insert(static_cast<int>(t.item<float>()));
  return out;
}

TEST(Schedule, QuantizerOptionsChangeAtTheEpochBoundaryAndFollowTheOverrideRule) {
  // schedule_quant.toml: activations 4 -> 2 bits and one weight clip per layer at epoch 1;
  // layer1 names `bits` in its override (keeps 3), layer2 does not (inherits 2).
  const auto full = fresh_dir(SWEEP_WORK, "quant_full"), first = fresh_dir(SWEEP_WORK, "quant_first");
  auto r = run_qhost("run " + src("schedule_quant.toml") + " --out " + full);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule_quant.toml") + " --out " + first, "QTOOL_TEST_STOP_AFTER_EPOCHS=1");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto before = qhost::read_checkpoint(first + "/last.h5"), after = qhost::read_checkpoint(full + "/last.h5");
  ASSERT_EQ(before.meta.epoch, 1);
  ASSERT_EQ(after.meta.epoch, 3);
  using Levels = std::map<std::string, std::set<int>>;
  EXPECT_EQ(activation_levels(before), (Levels{{"layer1", {8}}, {"layer2", {16}}, {"layer3", {16}}}));
  EXPECT_EQ(activation_levels(after), (Levels{{"layer1", {8}}, {"layer2", {4}}, {"layer3", {4}}}));
  // One weight clip per output channel before, one per layer after.
  EXPECT_EQ(tensor_of(before, "layer3.0.conv1.0.quant_weight.clip_val").numel(), 16);
  EXPECT_EQ(tensor_of(after, "layer3.0.conv1.0.quant_weight.clip_val").numel(), 1);
  // The rebuilt quantizers kept their counters: 18 forwards in 3 epochs of 2 training and
  // 4 evaluation batches, not 12 since the switch (clip carry-over: quant_rebuild_test).
  EXPECT_EQ(tensor_of(before, "layer3.0.conv1.0.quant_activation.iteration").item<float>(), 6.0f);
  EXPECT_EQ(tensor_of(after, "layer3.0.conv1.0.quant_activation.iteration").item<float>(), 18.0f);
  // Logged and recorded at the boundary, with what was carried over.
  const std::string log = read_text(full + "/log.txt");
  EXPECT_NE(log.find("epoch 2: quant.activation.bits: 4 -> 2 (schedule entry for epoch 1)"), std::string::npos) << log;
  EXPECT_NE(log.find("epoch 2: quant.override[1].activation.bits: 4 -> 2"), std::string::npos) << log;
  EXPECT_EQ(log.find("quant.override[0].activation.bits"), std::string::npos) << log;
  EXPECT_NE(log.find("quantizers: rebuilt 31 quantizers; carried over: iteration (31 quantizers)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("level_num (13 quantizers: its initial value depends on the changed option)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("clip_val (18 quantizers: new shape)"), std::string::npos) << log;
  EXPECT_NE(log.find("optimizer groups rebuilt, state dropped for 18 parameters"), std::string::npos) << log;
  const std::string metrics = read_text(full + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"kind\": \"schedule\", \"epoch\": 1, \"change\": \"quant.activation.bits: 4 -> 2"),
            std::string::npos)
      << metrics;
  // resolved.toml spells out the inherited override change; `qhost eval` of the final
  // checkpoint rebuilds the quantizers first (the weight clips changed shape) and
  // reproduces the run's last evaluation.
  auto c = run_qhost("check " + full + "/resolved.toml --print");
  EXPECT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("\"quant.override[1].activation.bits\" = 2"), std::string::npos) << c.output;
  auto e = run_qhost("eval " + full + "/last.h5");
  ASSERT_EQ(e.code, 0) << e.output;
  const std::regex last_eval("\"kind\": \"eval\", \"epoch\": 2, .*\"top1\": ([0-9.]+)");
  std::smatch em;
  ASSERT_TRUE(std::regex_search(metrics, em, last_eval)) << metrics;
  EXPECT_NE(e.output.find("top1 " + [&] {
              char b[32];
              std::snprintf(b, sizeof(b), "%.4f", std::stod(em[1]));
              return std::string(b);
            }()),
            std::string::npos)
      << e.output << metrics;
}

TEST(Schedule, AResumedRunRebuildsChangedQuantizersBeforeLoadingItsCheckpoint) {
  // Stopped after epoch 2 (the switch happened at the start of epoch 1) and resumed:
  // the weight clips have their new shape in the checkpoint, so the new process must
  // rebuild them before loading, then continue exactly like the uninterrupted run.
  const auto full = fresh_dir(SWEEP_WORK, "quant_resume_full"), parted = fresh_dir(SWEEP_WORK, "quant_resume_parted");
  auto r = run_qhost("run " + src("schedule_quant.toml") + " --out " + full);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule_quant.toml") + " --out " + parted, "QTOOL_TEST_STOP_AFTER_EPOCHS=2");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_qhost("run " + src("schedule_quant.toml") + " --resume --out " + parted);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("before loading the checkpoint: quant.activation.bits: 4 -> 2"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("before loading the checkpoint: quantizers: rebuilt 31 quantizers"), std::string::npos)
      << r.output;
  const auto a = qhost::read_checkpoint(full + "/last.h5"), b = qhost::read_checkpoint(parted + "/last.h5");
  EXPECT_EQ(b.meta.epoch, 3);
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    ASSERT_EQ(a.model[i].first, b.model[i].first);
    EXPECT_TRUE(a.model[i].second.equal(b.model[i].second)) << a.model[i].first;
  }
  ASSERT_EQ(a.optimizer.size(), b.optimizer.size());
  for (size_t i = 0; i < a.optimizer.size(); ++i) {
    ASSERT_EQ(a.optimizer[i].first, b.optimizer[i].first);
    EXPECT_TRUE(a.optimizer[i].second.equal(b.optimizer[i].second)) << a.optimizer[i].first;
  }
}

TEST(Sweep, GridRunsEveryPointThenSkipsThemAndReportsThem) {
  const auto out = fresh_dir(SWEEP_WORK, "grid");
  auto r = run_qhost("sweep " + src("grid.toml") + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<std::string> points{
      "tinyq__model.order=bacs__quant.weight.type=dorefa", "tinyq__model.order=bacs__quant.weight.type=lsq",
      "tinyq__model.order=cbsa__quant.weight.type=dorefa", "tinyq__model.order=cbsa__quant.weight.type=lsq"};
  for (const auto& p : points) {
    for (const char* f : {"resolved.toml", "metrics.jsonl", "best.h5", "sweep_done"})
      EXPECT_TRUE(fs::exists(out + "/" + p + "/" + f)) << p << "/" << f << "\n" << r.output;
  }
  EXPECT_NE(r.output.find("4 points: 4 done, 0 skipped, 0 failed"), std::string::npos) << r.output;
  // The overrides reached the runs.
  std::ifstream in(out + "/" + points[0] + "/resolved.toml");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("order = \"bacs\""), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("type = \"dorefa\""), std::string::npos) << ss.str();

  // A rerun skips every finished point.
  auto again = run_qhost("sweep " + src("grid.toml") + " --out " + out);
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("4 points: 0 done, 4 skipped, 0 failed"), std::string::npos) << again.output;

  // The report: one row per point, Markdown and CSV.
  const auto csv = out + "/report.csv";
  auto rep = run_qhost("report " + out + " --csv " + csv);
  ASSERT_EQ(rep.code, 0) << rep.output;
  EXPECT_EQ(count(rep.output, "\n"), 2u + 4u) << rep.output;
  EXPECT_NE(rep.output.find("Dataset | Method | Model | A/W | Top-1 | Flags | Differs | Config"), std::string::npos)
      << rep.output;
  EXPECT_EQ(count(rep.output, "synthetic | A:LSQ W:Dorefa-Net | ResNet-20 | 2/2 | "), 2u) << rep.output;
  EXPECT_EQ(count(rep.output, "synthetic | LSQ | ResNet-20 | 2/2 | "), 2u) << rep.output;
  // What ran: one epoch of 2 of its 4 batches (max_steps_per_epoch = 2).
  EXPECT_EQ(count(rep.output, " | bacs,real_skip,wt_var-mean,ep1 (2 of 4 steps) | "), 2u) << rep.output;
  EXPECT_EQ(count(rep.output, " | cbsa,real_skip,wt_var-mean,ep1 (2 of 4 steps) | "), 2u) << rep.output;
  // The swept keys tell the points apart; dorefa's own defaults are not listed.
  EXPECT_EQ(count(rep.output, " | model.order=bacs, quant.weight.type=dorefa | "), 1u) << rep.output;
  EXPECT_EQ(count(rep.output, " | model.order=cbsa, quant.weight.type=lsq | "), 1u) << rep.output;
  EXPECT_NE(rep.output.find(points[3] + "/resolved.toml"), std::string::npos) << rep.output;
  const std::regex top1_row("\\| 2/2 \\| [0-9]+\\.[0-9]{2} \\|");
  EXPECT_EQ(std::distance(std::sregex_iterator(rep.output.begin(), rep.output.end(), top1_row), std::sregex_iterator()),
            4)
      << rep.output;
  const auto rows = lines_of(csv);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], "dataset,method,model,a_w,top1,flags,differs,config");
  EXPECT_EQ(rows[1].rfind("synthetic,A:LSQ W:Dorefa-Net,ResNet-20,2/2,", 0), 0u) << rows[1];
  // A single run folder works too.
  auto one = run_qhost("report " + out + "/" + points[3]);
  EXPECT_EQ(one.code, 0) << one.output;
  EXPECT_EQ(count(one.output, "\n"), 3u) << one.output;
}

TEST(Sweep, ARetriedPointReplacesTheRunItsFailedAttemptLeft) {
  const auto out = fresh_dir(SWEEP_WORK, "retry_grid");
  // Both runs of the first sweep die at step 1 (after metrics.jsonl has a line):
  // the bits=2 point leaves a partial run, the bits=9 point fails validation.
  auto r = run_qhost("sweep " + src("bad_grid.toml") + " --out " + out,
                     "QTOOL_TEST_KILL_RANK=0 QTOOL_TEST_KILL_AT_STEP=1");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("2 points: 0 done, 0 skipped, 2 failed"), std::string::npos) << r.output;
  const std::string point = out + "/tinyq__quant.weight.bits=2";
  ASSERT_FALSE(read_text(point + "/metrics.jsonl").empty()) << r.output;
  // The rerun retries it in the same folder (qhost run refuses that without --overwrite).
  auto again = run_qhost("sweep " + src("bad_grid.toml") + " --out " + out);
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("2 points: 1 done, 0 skipped, 1 failed"), std::string::npos)
      << again.output << read_text(point + "/sweep.log");
  EXPECT_TRUE(fs::exists(point + "/sweep_done"));
}

TEST(Sweep, AFailedPointIsReportedAndTheOthersRun) {
  const auto out = fresh_dir(SWEEP_WORK, "bad_grid");
  auto r = run_qhost("sweep " + src("bad_grid.toml") + " --out " + out);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("2 points: 1 done, 0 skipped, 1 failed"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(out + "/tinyq__quant.weight.bits=2/sweep_done")) << r.output;
  EXPECT_FALSE(fs::exists(out + "/tinyq__quant.weight.bits=9/sweep_done")) << r.output;
  EXPECT_NE(r.output.find("FAILED | tinyq__quant.weight.bits=9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is outside [1, 8]"), std::string::npos) << r.output;
  // The rerun skips the finished point and retries the failed one.
  auto again = run_qhost("sweep " + src("bad_grid.toml") + " --out " + out);
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("2 points: 0 done, 1 skipped, 1 failed"), std::string::npos) << again.output;
  // The report lists the finished point only.
  auto rep = run_qhost("report " + out);
  EXPECT_EQ(rep.code, 0) << rep.output;
  EXPECT_EQ(count(rep.output, "\n"), 3u) << rep.output;
}

TEST(Sweep, BadSweepFilesAreConfigErrorsWithLines) {
  const auto dir = fresh_dir(SWEEP_WORK, "bad_files");
  fs::create_directories(dir);
  std::ofstream(dir + "/s.toml") << "base = \"" << src("tiny_quant.toml") << "\"\nbogus = 1\n[grid]\n\"a.b\" = 3\n";
  auto r = run_qhost("sweep " + dir + "/s.toml --out " + dir + "/out");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("s.toml:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bogus: unknown key"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("s.toml:4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("expected a non-empty array"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/out")) << r.output;
  auto missing = run_qhost("report " + dir);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("holds no run folder"), std::string::npos) << missing.output;
}

// The everyday ablation: named variants swap the quantizers with their own
// options (table values), zipped keys go together, and the report tells every
// point apart.
TEST(Sweep, VariantsZipAndTableValues) {
  const auto out = fresh_dir(SWEEP_WORK, "variants");
  auto r = run_qhost("sweep " + src("variants.toml") + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<std::string> points{"tinyq__lsq__optimizer.lr=0.05__optimizer.weight_decay=0.0005",
                                        "tinyq__lsq__optimizer.lr=0.02__optimizer.weight_decay=0.0001",
                                        "tinyq__dorefa__optimizer.lr=0.05__optimizer.weight_decay=0.0005",
                                        "tinyq__dorefa__optimizer.lr=0.02__optimizer.weight_decay=0.0001"};
  for (const auto& p : points) EXPECT_TRUE(fs::exists(out + "/" + p + "/sweep_done")) << p << "\n" << r.output;
  EXPECT_NE(r.output.find("4 points: 4 done, 0 skipped, 0 failed"), std::string::npos) << r.output;
  // A table value replaces the whole table: dorefa's weight quantizer does not
  // inherit the base's LSQ-only `adaptive = "var-mean"`.
  std::ifstream in(out + "/" + points[2] + "/resolved.toml");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("type = \"dorefa\""), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("lr = 0.05\n"), std::string::npos) << ss.str();
  auto rep = run_qhost("report " + out);
  ASSERT_EQ(rep.code, 0) << rep.output;
  EXPECT_EQ(count(rep.output, "synthetic | Dorefa-Net | ResNet-20 | 2/2 | "), 2u) << rep.output;
  EXPECT_EQ(count(rep.output, "optimizer.lr=0.02, optimizer.weight_decay=0.0001"), 2u) << rep.output;

  // A grid of whole quantizer tables: folder names say type and options.
  const auto grid_out = fresh_dir(SWEEP_WORK, "table_grid");
  r = run_qhost("sweep " + src("table_grid.toml") + " --out " + grid_out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(grid_out + "/tinyq__quant.activation=lsq_bits=3/sweep_done")) << r.output;
  EXPECT_TRUE(fs::exists(grid_out + "/tinyq__quant.activation=dorefa_bits=2/sweep_done")) << r.output;
}

TEST(Sweep, BadVariantsAndZipsAreConfigErrorsWithLines) {
  const auto dir = fresh_dir(SWEEP_WORK, "bad_variants");
  fs::create_directories(dir);
  std::ofstream(dir + "/s.toml") << "base = \"" << src("tiny_quant.toml") << "\"\n"
                                 << "[zip]\n\"a.b\" = [1, 2]\n\"c.d\" = [1]\n"
                                 << "[[variant]]\nset = { \"a.b\" = 1 }\n"
                                 << "[[variant]]\nname = \"x\"\nset = 3\n";
  auto r = run_qhost("sweep " + dir + "/s.toml --out " + dir + "/out");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("zip.c.d: 1 values, but zip.a.b has 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("variant[0]: needs a name"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("variant[1]: needs set = {"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/out")) << r.output;
}
