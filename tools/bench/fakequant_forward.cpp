// fakequant_forward - the B side of tools/bench/export_ort.js: the forward of a
// checkpoint's fake-quantized model as `qhost eval` runs it (rebuilt the way
// `qhost eval` / `qhost export` rebuild it, eval mode, no gradients), timed on
// a seeded N(0, 1) batch.
//   fakequant_forward CHECKPOINT.h5 [--batch N] [--iters K] [--threads T] [--set k=v]...
// Prints one line `ms_per_batch <median of K timed forwards>` after 3 warm-up
// forwards; the stand-in data (--synthetic) means no dataset files are needed.
#include "platform/cpu_math.hpp"
#include "platform/logging.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "run/checkpoint_model.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string checkpoint;
  int64_t batch = 1;
  int iters = 20, threads = 2;
  qhost::CheckpointModelOptions mo;
  mo.synthetic = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--set") && i + 1 < argc) mo.overrides.push_back(argv[++i]);
    else if (checkpoint.empty() && argv[i][0] != '-') checkpoint = argv[i];
    else {
      std::fprintf(stderr, "usage: fakequant_forward CHECKPOINT.h5 [--batch N] [--iters K] [--threads T] [--set k=v]...\n");
      return 1;
    }
  }
  if (checkpoint.empty() || batch < 1 || iters < 1) {
    std::fprintf(stderr, "fakequant_forward: a checkpoint, --batch >= 1 and --iters >= 1 are needed\n");
    return 1;
  }
  try {
    qhost::init_logging("warn");
    // The checkpoint's [experiment] threads would win otherwise (checkpoint_config sets them).
    mo.overrides.push_back("experiment.threads=" + std::to_string(threads));
    qhost::Registry registry;
    qhost::PluginLoader loader(registry);
    qhost::CheckpointModel m = qhost::load_checkpoint_model(registry, loader, checkpoint, mo);
    at::set_num_threads(threads);
    std::vector<int64_t> shape{batch};
    shape.insert(shape.end(), m.sample_shape.begin(), m.sample_shape.end());
    torch::manual_seed(0);
    const torch::Tensor x = torch::randn(shape);
    torch::NoGradGuard no_grad;
    m.model->eval();
    for (int i = 0; i < 3; ++i) m.model->forward(x);
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const torch::Tensor y = m.model->forward(x);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (y.size(0) != batch) throw std::runtime_error("logits of batch " + std::to_string(y.size(0)));
    }
    std::sort(ms.begin(), ms.end());
    std::printf("ms_per_batch %.3f\n", ms[ms.size() / 2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fakequant_forward: %s\n", e.what());
    return 6;
  }
  return 0;
}
