// train_step - FP32 training-step time on synthetic data: forward, backward and
// an SGD step of ResNet-20 (3x32x32, batch 128) and ResNet-18 (3x224x224,
// batch 16), full precision and with LSQ 2/2 quantizers (ratio in the same run).
// Reference (Python QTool): ~332 ms and ~1180 ms per FP step on 2 threads.
//
//   train_step [--threads 2] [--steps 10] [--only r20|r18] [--no-quant] [--keep-denormals] [--profile PREFIX]
//   (denormals are flushed to zero as qhost does, unless --keep-denormals)
//   (--profile writes PREFIX_<case>_{fp,lsq}.json: chrome traces of two more steps)
//   (plugins from $QTOOL_PLUGIN_PATH; the quantized variants need plugin lsq)
#include "platform/allocator.hpp"
#include "platform/cpu_math.hpp"
#include "platform/logging.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"
#include "train/optimizer.hpp"

#include <qsdk/error.hpp>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/resource.h>
#include <memory>
#include <string>
#include <utility>
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

struct StepCost {
  double wall_ms = 0, cpu_ms = 0, faults = 0;
};

/// Minor page faults of the process so far (fresh memory touched for the first time).
long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// One model with its optimizer and a fixed synthetic batch.
struct Runner {
  std::shared_ptr<qhost::LayerFactory> factory;
  std::shared_ptr<qsdk::ModelImpl> model;
  std::unique_ptr<qhost::Optimizer> opt;
  torch::Tensor x, y;

  Runner(qhost::Registry& registry, const Case& c, const qsdk::Table& quant) {
    torch::manual_seed(0);
    factory = std::make_shared<qhost::LayerFactory>(
        quant,
        [&registry](const qsdk::Table& t, const qsdk::QuantizerContext& ctx) { return registry.make_quantizer(t, ctx); },
        c.batch, c.shape[1]);
    qsdk::ModelContext mctx;
    mctx.num_classes = c.shape[1] >= 100 ? 1000 : 100;
    mctx.input_shape = c.shape;
    mctx.layers = factory.get();
    model = registry.make_model(
        qsdk::Table{{"type", "resnet"}, {"depth", c.depth}, {"width_alpha", c.width_alpha}}, mctx);
    model->train();
    qhost::OptimizerSettings os;
    os.nesterov = true;
    opt = std::make_unique<qhost::Optimizer>(*model, os);
    x = torch::randn({c.batch, c.shape[0], c.shape[1], c.shape[2]});
    y = torch::randint(0, mctx.num_classes, {c.batch}, torch::kInt64);
  }

  /// Wall and process-CPU milliseconds and minor page faults of one forward + backward + SGD step.
  StepCost step() {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    const long f0 = minor_faults();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    opt->zero_grad();
    loss.backward();
    opt->step();
    StepCost c;
    c.cpu_ms = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    c.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    c.faults = static_cast<double>(minor_faults() - f0);
    return c;
  }
};

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Writes a chrome trace of `steps` steps of `r` (the profiler's per-op wall times).
void profile(Runner& r, const std::string& file, int steps) {
  torch::autograd::profiler::RecordProfile guard(file);
  for (int i = 0; i < steps; ++i) r.step();
}

}  // namespace

int main(int argc, char** argv) {
  qhost::tune_allocator();  // as qhost does
  int threads = 2, steps = 10;
  bool quant = true, keep_denormals = false;
  std::string only, profile_prefix;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--profile") && i + 1 < argc) profile_prefix = argv[++i];
    else if (!std::strcmp(argv[i], "--no-quant")) quant = false;
    else if (!std::strcmp(argv[i], "--keep-denormals")) keep_denormals = true;
    else {
      std::fprintf(stderr,
                   "usage: train_step [--threads N] [--steps N] [--only r20|r18] [--no-quant] [--keep-denormals]\n"
                   "                  [--profile PREFIX]\n");
      return 1;
    }
  }
  if (steps < 1) steps = 1;
  try {
    qhost::init_logging("warn");
    at::set_num_threads(threads);
    if (!keep_denormals) qhost::set_flush_denormal(true);  // as qhost does ([experiment] flush_denormal)
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
    std::printf("threads %d, median of %d steps each, FP and LSQ steps interleaved (after 2 warm-up steps)\n", threads,
                steps);
    std::printf("%-28s %10s %12s %10s\n", "case", "FP ms", "LSQ2/2 ms", "ratio");
    for (const auto& c : cases) {
      if (!only.empty() && only != c.name) continue;
      Runner fp(registry, c, {});
      std::unique_ptr<Runner> q;
      if (quant) q = std::make_unique<Runner>(registry, c, lsq22());
      // Two warm-up steps each (allocator, quantizer initialisation); then the
      // two models alternate so that a machine shared with other work slows
      // both alike and the ratio stays meaningful.
      for (int i = 0; i < 2; ++i) {
        fp.step();
        if (q) q->step();
      }
      std::vector<double> fp_ms, q_ms, fp_cpu, q_cpu, fp_faults, q_faults;
      for (int i = 0; i < steps; ++i) {
        const auto a = fp.step();
        fp_ms.push_back(a.wall_ms);
        fp_cpu.push_back(a.cpu_ms);
        fp_faults.push_back(a.faults);
        if (!q) continue;
        const auto b = q->step();
        q_ms.push_back(b.wall_ms);
        q_cpu.push_back(b.cpu_ms);
        q_faults.push_back(b.faults);
      }
      const double f = median(fp_ms), m = median(q_ms);
      char label[64];
      std::snprintf(label, sizeof(label), "%s %lldx%lldx%lld b%lld", c.name == "r20" ? "ResNet-20" : "ResNet-18",
                    static_cast<long long>(c.shape[0]), static_cast<long long>(c.shape[1]),
                    static_cast<long long>(c.shape[2]), static_cast<long long>(c.batch));
      if (q)
        std::printf("%-28s %10.1f %12.1f %10.2f   (reference FP %.0f ms; CPU time %.0f / %.0f ms = %.2f)\n", label, f,
                    m, m / f, c.reference_ms, median(fp_cpu), median(q_cpu), median(q_cpu) / median(fp_cpu));
      else std::printf("%-28s %10.1f %12s %10s   (reference FP %.0f ms)\n", label, f, "-", "-", c.reference_ms);
      std::printf("%-28s %10.0f %12.0f   (minor page faults per step, median)\n", "", median(fp_faults),
                  q ? median(q_faults) : 0.0);
      std::fflush(stdout);
      if (!profile_prefix.empty()) {
        profile(fp, profile_prefix + "_" + c.name + "_fp.json", 2);
        if (q) profile(*q, profile_prefix + "_" + c.name + "_lsq.json", 2);
      }
    }
    registry.clear();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
