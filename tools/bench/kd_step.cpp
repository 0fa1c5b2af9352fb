// kd_step - the step-time cost of knowledge distillation: a plain training
// step against the same step with trick/kd (the real plugin, built through the
// registry; the teacher is a full-precision ResNet-20 written to a temporary
// HDF5 checkpoint and loaded the way `qhost run` loads it: its own quantizer-
// free layer factory, eval mode, no gradients). Students: FP and LSQ 2/2.
// Shapes: ResNet-20 on 3x32x32 (CIFAR layout) and 1x28x28 (Fashion-MNIST),
// batch 128. Each step does what Trainer::train_epoch does: trick
// transform_batch, forward, cross-entropy, trick transform_loss, zero_grad,
// backward, SGD step, trick on_step_end.
//
//   kd_step [--threads 2] [--steps 10] [--only cifar|fmnist] [--fp-only]
//   (plugins from $QTOOL_PLUGIN_PATH: resnet and kd, lsq for the LSQ student)
#include "checkpoint/checkpoint.hpp"
#include "platform/allocator.hpp"
#include "platform/cpu_math.hpp"
#include "platform/logging.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"
#include "train/optimizer.hpp"
#include "train/trainer.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;

struct Shape {
  std::string name;
  std::string label;
  std::vector<int64_t> shape;  // C, H, W
  int64_t batch = 128;
  int64_t classes = 10;
};

qsdk::Table resnet20() { return qsdk::Table{{"type", "resnet"}, {"depth", 20}, {"width_alpha", 0.25}}; }

qsdk::Table lsq22() {
  return qsdk::Table{{"weight", qsdk::Table{{"type", "lsq"}, {"bits", 2}}},
                     {"activation", qsdk::Table{{"type", "lsq"}, {"bits", 2}}}};
}

qsdk::ModelContext model_context(const Shape& s, qhost::LayerFactory* factory) {
  qsdk::ModelContext c;
  c.num_classes = s.classes;
  c.input_shape = s.shape;
  c.layers = factory;
  return c;
}

// A student (FP or quantized) with its optimizer, a fixed batch and optional tricks.
struct Runner {
  std::shared_ptr<qhost::LayerFactory> factory;
  std::shared_ptr<qsdk::ModelImpl> model;
  std::unique_ptr<qhost::Optimizer> opt;
  std::vector<std::shared_ptr<qsdk::Trick>> tricks;
  qsdk::Batch batch;
  int64_t step_count = 0;

  Runner(qhost::Registry& registry, const Shape& s, const qsdk::Table& quant,
         std::vector<std::shared_ptr<qsdk::Trick>> with) {
    torch::manual_seed(0);  // every student starts from the same weights
    factory = std::make_shared<qhost::LayerFactory>(
        quant,
        [&registry](const qsdk::Table& t, const qsdk::QuantizerContext& c) { return registry.make_quantizer(t, c); },
        s.batch, s.shape[1]);
    model = registry.make_model(resnet20(), model_context(s, factory.get()));
    model->train();
    qhost::OptimizerSettings os;
    os.nesterov = true;
    opt = std::make_unique<qhost::Optimizer>(*model, os);
    tricks = std::move(with);
    batch.input = torch::randn({s.batch, s.shape[0], s.shape[1], s.shape[2]});
    batch.target = torch::randint(0, s.classes, {s.batch}, torch::kInt64);
  }

  /// Wall and process-CPU milliseconds of one training step as the trainer runs it.
  std::pair<double, double> step() {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    qsdk::StepInfo info;
    info.global_step = step_count;
    info.iter = step_count;
    info.lr = 0.1;
    qsdk::Batch b = batch;  // the trainer hands each step a fresh batch
    for (auto& t : tricks) t->transform_batch(b, info);
    auto logits = model->forward(b.input);
    auto loss = qhost::classification_loss(logits, b);
    for (auto& t : tricks) loss = t->transform_loss(loss, logits, b, info);
    opt->zero_grad();
    loss.backward();
    opt->step();
    for (auto& t : tricks) t->on_step_end(info);
    (void)loss.item<double>();  // the trainer reads the loss every step
    ++step_count;
    const double cpu = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    return {std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), cpu};
  }
};

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  qhost::tune_allocator();  // as qhost does
  int threads = 2, steps = 10;
  bool quant = true;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--fp-only")) quant = false;
    else {
      std::fprintf(stderr, "usage: kd_step [--threads N] [--steps N] [--only cifar|fmnist] [--fp-only]\n");
      return 1;
    }
  }
  if (steps < 1) steps = 1;
  const fs::path tmp = fs::temp_directory_path() / ("kd_step." + std::to_string(::getpid()));
  int rc = 0;
  try {
    qhost::init_logging("warn");
    at::set_num_threads(threads);
    qhost::set_flush_denormal(true);  // as qhost does ([experiment] flush_denormal)
    qhost::Registry registry;
    qhost::PluginLoader loader(registry);
    loader.load("resnet");
    loader.load("kd");
    if (quant) {
      try {
        loader.load("lsq");
      } catch (const qsdk::Error& e) {
        std::fprintf(stderr, "lsq plugin not available, FP student only: %s\n", e.what());
        quant = false;
      }
    }
    fs::create_directories(tmp);
    const std::vector<Shape> shapes{{"cifar", "ResNet-20 3x32x32 b128", {3, 32, 32}, 128, 10},
                                    {"fmnist", "ResNet-20 1x28x28 b128", {1, 28, 28}, 128, 10}};
    std::printf("threads %d, median of %d steps each, plain and kd steps interleaved (after 2 warm-up steps);\n"
                "teacher: FP ResNet-20 (eval, no grad); kd: soft KL, T = 4, alpha = 0.5\n",
                threads, steps);
    std::printf("%-24s %-8s %9s %9s %6s %9s   %s\n", "shape", "student", "plain ms", "kd ms", "ratio", "extra ms",
                "(process CPU ms: plain / kd = ratio)");
    for (const auto& s : shapes) {
      if (!only.empty() && only != s.name) continue;
      // The teacher's checkpoint, written like a run's best.h5.
      const std::string ckpt = (tmp / (s.name + "_teacher.h5")).string();
      {
        torch::manual_seed(1);
        qhost::LayerFactory fp_factory(qsdk::Table{}, qhost::QuantizerMaker{}, s.batch, s.shape[1]);
        auto teacher = registry.make_model(resnet20(), model_context(s, &fp_factory));
        qhost::CheckpointData d;
        d.model = qhost::module_state(*teacher);
        qhost::write_checkpoint(ckpt, d);
      }
      // The TrickContext `qhost run` gives tricks (run.cpp): an FP model through its own
      // quantizer-free layer factory, with the checkpoint loaded into it.
      qsdk::TrickContext tctx;
      tctx.config_dir = tmp.string();
      tctx.num_classes = s.classes;
      tctx.load_model = [&registry, s](const qsdk::Table& model, const std::string& path) {
        auto factory = std::make_shared<qhost::LayerFactory>(qsdk::Table{}, qhost::QuantizerMaker{}, s.batch, s.shape[1]);
        auto net = registry.make_model(model, model_context(s, factory.get()));
        qhost::load_module_state(*net, qhost::read_checkpoint(path).model, path);
        auto holder = std::make_shared<std::pair<std::shared_ptr<qhost::LayerFactory>, std::shared_ptr<qsdk::ModelImpl>>>(
            std::move(factory), net);
        return std::shared_ptr<qsdk::ModelImpl>(holder, net.get());
      };
      const qsdk::Table kd{{"type", "kd"},       {"teacher", resnet20()}, {"checkpoint", fs::path(ckpt).filename().string()},
                           {"alpha", 0.5},       {"temperature", 4.0},    {"loss", "soft"}};
      std::vector<std::pair<std::string, qsdk::Table>> students{{"FP", {}}};
      if (quant) students.emplace_back("LSQ 2/2", lsq22());
      for (const auto& [student, q] : students) {
        Runner plain(registry, s, q, {});
        Runner with_kd(registry, s, q, {registry.make_trick(kd, tctx)});
        // Warm-up (allocator, quantizer initialisation), then alternate so a machine
        // shared with other work slows both alike and the ratio stays meaningful.
        for (int i = 0; i < 2; ++i) {
          plain.step();
          with_kd.step();
        }
        std::vector<double> a, b, ca, cb;
        for (int i = 0; i < steps; ++i) {
          const auto x = plain.step();
          const auto y = with_kd.step();
          a.push_back(x.first);
          ca.push_back(x.second);
          b.push_back(y.first);
          cb.push_back(y.second);
        }
        const double p = median(a), k = median(b), cp = median(ca), ck = median(cb);
        std::printf("%-24s %-8s %9.1f %9.1f %6.2f %9.1f   (%.0f / %.0f = %.2f)\n", s.label.c_str(), student.c_str(), p,
                    k, k / p, k - p, cp, ck, ck / cp);
        std::fflush(stdout);
      }
    }
    registry.clear();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    rc = 1;
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return rc;
}
