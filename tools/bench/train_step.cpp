// train_step - FP32 training-step time on synthetic data: forward, backward and
// an SGD step of ResNet-20 (3x32x32, batch 128) and ResNet-18 (3x224x224,
// batch 16), full precision and with LSQ 2/2 quantizers (ratio in the same run).
// Reference (Python QTool): ~332 ms and ~1180 ms per FP step on 2 threads.
//
//   train_step [--threads 2] [--steps 10] [--only r20|r18] [--no-quant]
//   (plugins from $QTOOL_PLUGIN_PATH; the quantized variants need plugin lsq)
#include "layer_factory.hpp"
#include "logging.hpp"
#include "optimizer.hpp"
#include "plugin_loader.hpp"
#include "registry.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Case {
  std::string name;
  int64_t depth;
  double width_alpha;
  std::vector<int64_t> shape;  // C, H, W
  int64_t batch;
  double reference_ms;
};

qsdk::Table lsq22() {
  qsdk::Table w{{"type", "lsq"}, {"bits", 2}};
  qsdk::Table a{{"type", "lsq"}, {"bits", 2}};
  return qsdk::Table{{"weight", w}, {"activation", a}};
}

// Median milliseconds of one training step.
double time_steps(qhost::Registry& registry, const Case& c, const qsdk::Table& quant, int steps) {
  torch::manual_seed(0);
  qhost::LayerFactory factory(
      quant, [&registry](const qsdk::Table& t, const qsdk::QuantizerContext& ctx) { return registry.make_quantizer(t, ctx); },
      c.batch, c.shape[1]);
  qsdk::ModelContext mctx;
  mctx.num_classes = c.shape[1] >= 100 ? 1000 : 100;
  mctx.input_shape = c.shape;
  mctx.layers = &factory;
  auto model = registry.make_model(
      qsdk::Table{{"type", "resnet"}, {"depth", c.depth}, {"width_alpha", c.width_alpha}}, mctx);
  model->train();
  qhost::OptimizerSettings os;
  os.nesterov = true;
  qhost::Optimizer opt(*model, os);
  auto x = torch::randn({c.batch, c.shape[0], c.shape[1], c.shape[2]});
  auto y = torch::randint(0, mctx.num_classes, {c.batch}, torch::kInt64);
  std::vector<double> ms;
  for (int i = 0; i < steps + 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 2) ms.push_back(dt);  // two warm-up steps (allocator, quantizer initialisation)
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, steps = 10;
  bool quant = true;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--no-quant")) quant = false;
    else {
      std::fprintf(stderr, "usage: train_step [--threads N] [--steps N] [--only r20|r18] [--no-quant]\n");
      return 1;
    }
  }
  try {
    qhost::init_logging("warn");
    at::set_num_threads(threads);
    qhost::Registry registry;
    qhost::PluginLoader loader(registry);
    loader.load("resnet");
    if (quant) {
      try {
        loader.load("lsq");
      } catch (const qsdk::Error& e) {
        std::fprintf(stderr, "lsq plugin not available, FP only: %s\n", e.what());
        quant = false;
      }
    }
    const std::vector<Case> cases{{"r20", 20, 0.25, {3, 32, 32}, 128, 332.0}, {"r18", 18, 1.0, {3, 224, 224}, 16, 1180.0}};
    std::printf("threads %d, median of %d steps (after 2 warm-up steps)\n", threads, steps);
    std::printf("%-28s %10s %12s %10s\n", "case", "FP ms", "LSQ2/2 ms", "ratio");
    for (const auto& c : cases) {
      if (!only.empty() && only != c.name) continue;
      const double fp = time_steps(registry, c, {}, steps);
      const double q = quant ? time_steps(registry, c, lsq22(), steps) : 0.0;
      char label[64];
      std::snprintf(label, sizeof(label), "%s %lldx%lldx%lld b%lld", c.name == "r20" ? "ResNet-20" : "ResNet-18",
                    static_cast<long long>(c.shape[0]), static_cast<long long>(c.shape[1]),
                    static_cast<long long>(c.shape[2]), static_cast<long long>(c.batch));
      if (quant) std::printf("%-28s %10.1f %12.1f %10.2f   (reference FP %.0f ms)\n", label, fp, q, q / fp, c.reference_ms);
      else std::printf("%-28s %10.1f %12s %10s   (reference FP %.0f ms)\n", label, fp, "-", "-", c.reference_ms);
      std::fflush(stdout);
    }
    registry.clear();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
