// cuda_check: runs the fused quantizer kernels and a quantized ResNet-18 on
// CUDA and on the CPU, compares them, and times CUDA fused vs composed kernels
// and the FP vs LSQ training step. Prints one line per check; exits 1 on a mismatch.
#include <torch/torch.h>

#include <qsdk/registrar.hpp>
#include <dorefa/dorefa_math.hpp>
#include <lsq/lsq_math.hpp>
#include <pact/pact_math.hpp>
#include <quant_common/kernels.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"

// The shared quantizer math and each method's own (plugins/<method>/include/<method>/<method>_math.hpp)
// under one name.
namespace qc {
using namespace qplug_quant_common;
using namespace qplug_dorefa;
using namespace qplug_lsq;
using namespace qplug_pact;
namespace composed {
using namespace qplug_quant_common::composed;
using namespace qplug_dorefa::composed;
using namespace qplug_lsq::composed;
using namespace qplug_pact::composed;
}  // namespace composed
}  // namespace qc

namespace {

int failures = 0;

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.cpu().to(torch::kDouble) - b.cpu().to(torch::kDouble)).abs().max().item<double>();
}

void report(const char* what, double diff, double tol) {
  bool ok = diff <= tol;
  if (!ok) ++failures;
  std::printf("%-58s max|cuda-cpu| = %.3g  %s\n", what, diff, ok ? "ok" : "MISMATCH");
}

double time_ms(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 3; ++i) fn();
  torch::cuda::synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

/// Compares fused CUDA against fused CPU (forward, input grad, param grad) and
/// times fused vs composed on CUDA.
void check_kernel(const char* name, const torch::Tensor& x_cpu, const torch::Tensor& p_cpu,
                  const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& fused,
                  const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& composed) {
  auto run = [&](const torch::Tensor& x0, const torch::Tensor& p0, bool use_fused) {
    auto x = x0.detach().clone().requires_grad_();
    auto p = p0.defined() ? p0.detach().clone().requires_grad_() : torch::Tensor();
    auto y = use_fused ? fused(x, p) : composed(x, p);
    auto g = torch::sin(torch::arange(y.numel(), y.options()).view(y.sizes()));
    y.backward(g);
    return std::vector<torch::Tensor>{y.detach(), x.grad(), p.defined() ? p.grad() : torch::Tensor()};
  };
  auto cpu = run(x_cpu, p_cpu, true);
  auto x_gpu = x_cpu.cuda();
  auto p_gpu = p_cpu.defined() ? p_cpu.cuda() : torch::Tensor();
  auto gpu = run(x_gpu, p_gpu, true);
  std::string n(name);
  report((n + " forward").c_str(), max_diff(cpu[0], gpu[0]), 1e-5 * (1 + cpu[0].abs().max().item<double>()));
  report((n + " grad input").c_str(), max_diff(cpu[1], gpu[1]), 1e-5 * (1 + cpu[1].abs().max().item<double>()));
  if (cpu[2].defined() && cpu[2].numel() > 0)
    report((n + " grad param").c_str(), max_diff(cpu[2], gpu[2]), 1e-3 * (1 + cpu[2].abs().max().item<double>()));
  double t_fused = time_ms([&] { run(x_gpu, p_gpu, true); }, 50);
  double t_comp = time_ms([&] { run(x_gpu, p_gpu, false); }, 50);
  std::printf("%-58s fused %.3f ms, composed %.3f ms, speed-up %.2fx\n", (n + " fwd+bwd CUDA").c_str(), t_fused,
              t_comp, t_comp / t_fused);
}

void kernel_checks() {
  torch::manual_seed(0);
  auto act = torch::randn({128, 64, 32, 32}) * 0.8 + 0.3;
  auto wt = torch::randn({256, 256, 3, 3}) * 0.05;
  qc::LsqArgs a;
  a.n = 3;
  a.half_range = true;
  a.layout = qc::GroupLayout::whole(act.numel());
  check_kernel("lsq activation 2b layer", act, torch::full({1}, 1.1f),
               [&](auto& x, auto& p) { return qc::lsq_quantize(x, p, a); },
               [&](auto& x, auto& p) { return qc::composed::lsq_quantize(x, p, a); });
  qc::LsqArgs w;
  w.n = 3;
  w.half_range = false;
  w.layout = qc::GroupLayout::flat_blocks(wt.numel(), 256);
  check_kernel("lsq weight 2b channel", wt, torch::full({256, 1, 1, 1}, 0.07f),
               [&](auto& x, auto& p) { return qc::lsq_quantize(x, p, w); },
               [&](auto& x, auto& p) { return qc::composed::lsq_quantize(x, p, w); });
  check_kernel("dorefa activation 2b", act, torch::Tensor(),
               [](auto& x, auto&) { return qc::dorefa_activation(x, 1.0, 3); },
               [](auto& x, auto&) { return qc::composed::dorefa_activation(x, 1.0, 3); });
  check_kernel("dorefa weight 2b (tanh)", wt, torch::Tensor(),
               [](auto& x, auto&) { return qc::dorefa_weight(x, 1.0, 3); },
               [](auto& x, auto&) { return qc::composed::dorefa_weight(x, 1.0, 3); });
  check_kernel("pact activation 2b", act, torch::full({1}, 1.3f),
               [](auto& x, auto& p) { return qc::pact_activation(x, p, 3); },
               [](auto& x, auto& p) { return qc::composed::pact_activation(x, p, 3); });
}

void model_checks(const qhost::Registry& reg) {
  for (const char* q : {"none", "lsq", "dorefa"}) {
    qsdk::Table quant;
    if (std::string(q) != "none") {
      quant["weight"] = qsdk::Table{{"type", q}, {"bits", 2}};
      quant["activation"] = qsdk::Table{{"type", std::string(q) == "lsq" ? "lsq" : "dorefa"}, {"bits", 2}};
    }
    auto maker = [&](const qsdk::Table& t, const qsdk::QuantizerContext& c) { return reg.make_quantizer(t, c); };
    qhost::LayerFactory layers(quant, maker, 32, 224);
    qsdk::ModelContext ctx;
    ctx.num_classes = 1000;
    ctx.input_shape = {3, 224, 224};
    ctx.layers = &layers;
    auto model = reg.make_model({{"type", "torch_resnet"}, {"depth", 18}}, ctx);
    // Layer by layer: every conv gets the same input on CPU and CUDA, so a
    // rounding difference in one layer cannot flip quantization levels in the
    // next (which makes whole-network logits of a 2-bit net incomparable).
    torch::manual_seed(1);
    std::vector<std::pair<std::string, std::shared_ptr<qsdk::Conv2dLayerImpl>>> convs;
    for (auto& item : model->named_modules("", false))
      if (auto conv = std::dynamic_pointer_cast<qsdk::Conv2dLayerImpl>(item.value())) convs.emplace_back(item.key(), conv);
    model->eval();
    std::vector<torch::Tensor> inputs, cpu_out;
    for (auto& [path, conv] : convs) {
      const auto& o = conv->options();
      int64_t hw = o.in_channels() >= 256 ? 14 : 28;
      auto xin = torch::relu(torch::randn({2, o.in_channels(), hw, hw}));
      inputs.push_back(xin);
      torch::NoGradGuard ng;
      cpu_out.push_back(conv->forward(xin));
    }
    model->to(torch::kCUDA);
    double worst = 0;
    std::string worst_path;
    for (size_t i = 0; i < convs.size(); ++i) {
      torch::NoGradGuard ng;
      auto y = convs[i].second->forward(inputs[i].cuda());
      double d = max_diff(cpu_out[i], y) / (1 + cpu_out[i].abs().max().item<double>());
      if (d > worst) { worst = d; worst_path = convs[i].first; }
    }
    std::string n = std::string("resnet18 ") + q + " per-conv outputs (" + std::to_string(convs.size()) + " convs, rel)";
    report(n.c_str(), worst, 1e-4);
    if (!worst_path.empty()) std::printf("%-58s worst layer %s\n", "", worst_path.c_str());
    auto xe = torch::randn({4, 3, 224, 224});
    model->to(torch::kCPU);
    auto e_cpu = model->forward(xe).detach();
    model->to(torch::kCUDA);
    auto e_gpu = model->forward(xe.cuda()).detach();
    std::printf("%-58s max|cuda-cpu| = %.3g (information: level flips propagate)\n",
                (std::string("resnet18 ") + q + " end-to-end logits").c_str(), max_diff(e_cpu, e_gpu));
    // Training step timing on CUDA, batch 64.
    model->train();
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    auto xb = torch::randn({64, 3, 224, 224}, torch::kCUDA);
    auto yb = torch::randint(0, 1000, {64}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    double ms = time_ms(
        [&] {
          opt.zero_grad();
          auto loss = torch::nn::functional::cross_entropy(model->forward(xb), yb);
          loss.backward();
          opt.step();
        },
        20);
    std::printf("%-58s %.2f ms/step (%.0f img/s)\n", (std::string("resnet18 train step b64 CUDA ") + q).c_str(), ms,
                64000.0 / ms);
  }
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("CUDA not available\n");
    return 2;
  }
  // TF32 would change conv results by ~1e-3 and hide real differences.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  // The host's own loader (stamp checked) and registry, never destroyed: the
  // factories and the modules they build live in the plugins.
  auto* reg = new qhost::Registry;
  auto* loader = new qhost::PluginLoader(*reg, {QTOOL_GPU_PLUGIN_DIR});
  for (const char* p : {"lsq", "dorefa", "pact", "torch_resnet"}) loader->load(p);
  kernel_checks();
  model_checks(*reg);
  std::printf("%d mismatches\n", failures);
  return failures ? 1 : 0;
}
