// quant_kernels: times the fused quantizer kernels against the ATen-composed
// reference (forward + backward) on a 128x64x32x32 activation, ResNet-20's
// 128x16x32x32 post-ReLU activation and a 256x256x3x3 weight, and prints the ratios.
//
// Usage: quant_kernels_bench [repetitions=10] [threads=0 (ATen default)]
// Prints the best time of each variant and composed/fused (> 1: fused is faster).
#include <dorefa/dorefa_math.hpp>
#include <lqnet/lqnet_math.hpp>
#include <lsq/lsq_math.hpp>
#include <nonuniform/nonuniform_math.hpp>
#include <pact/pact_math.hpp>
#include <quant_common/kernels.hpp>
#include <xnor/xnor_math.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

// The shared quantizer math and each method's own (plugins/<method>/include/<method>/<method>_math.hpp)
// under one name.
namespace qc {
using namespace qplug_quant_common;
using namespace qplug_dorefa;
using namespace qplug_lqnet;
using namespace qplug_lsq;
using namespace qplug_nonuniform;
using namespace qplug_pact;
using namespace qplug_xnor;
}  // namespace qc

namespace {

using Kernel = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& p)>;

/// Minimum milliseconds of forward + backward over `reps` runs (after 2 warm-up
/// runs): on a shared machine the minimum is the least disturbed estimate.
double time_ms(const Kernel& k, const torch::Tensor& x0, const std::vector<torch::Tensor>& p0, int reps, bool fused) {
  qc::set_use_fused_kernels(fused);
  torch::Tensor g = torch::ones_like(x0);
  std::vector<double> t;
  for (int r = 0; r < reps + 2; ++r) {
    torch::Tensor x = x0.detach().requires_grad_(true);
    std::vector<torch::Tensor> p;
    for (const auto& q : p0) p.push_back(q.detach().clone().requires_grad_(true));
    const auto start = std::chrono::steady_clock::now();
    torch::Tensor y = k(x, p);
    y.backward(g);
    const auto stop = std::chrono::steady_clock::now();
    if (r >= 2) t.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  return *std::min_element(t.begin(), t.end());
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  if (argc > 2 && std::atoi(argv[2]) > 0) torch::set_num_threads(std::atoi(argv[2]));
  torch::manual_seed(0);
  const torch::Tensor act = torch::randn({128, 64, 32, 32}) * 0.8 + 0.4;
  // ResNet-20's first stage at batch 128 (the train_step benchmark): post-ReLU,
  // a quarter of the size (below glibc's largest mmap threshold, so unlike
  // `act` its buffers are reused instead of page-faulted in on every call).
  const torch::Tensor act20 = torch::relu(torch::randn({128, 16, 32, 32}));
  const auto act20_whole = qc::GroupLayout::whole(act20.numel());
  const torch::Tensor wt = torch::randn({256, 256, 3, 3}) * 0.05;
  const auto act_whole = qc::GroupLayout::whole(act.numel());
  const auto wt_rows = qc::GroupLayout::flat_blocks(wt.numel(), 256);

  struct Case {
    std::string name;
    const torch::Tensor* x;
    std::vector<torch::Tensor> params;
    Kernel kernel;
  };
  qc::LsqArgs la;
  la.layout = act_whole;
  qc::LsqArgs lw;
  lw.half_range = false;
  lw.layout = wt_rows;
  const torch::Tensor lev = torch::tensor({0.f, 0.6745f, 1.349f, 2.0235f}).reshape({4, 1});
  const torch::Tensor thr = (lev.slice(0, 0, 3) + lev.slice(0, 1, 4)) / 2;
  std::vector<Case> cases = {
      {"lsq act 2b", &act, {torch::ones({1})},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::lsq_quantize(x, p[0], la); }},
      {"lsq act 2b", &act20, {torch::ones({1})},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
         qc::LsqArgs a = la;
         a.layout = act20_whole;
         return qc::lsq_quantize(x, p[0], a);
       }},
      {"dorefa act 2b", &act20, {},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return qc::dorefa_activation(x, 1.0, 3); }},
      {"pact act 2b", &act20, {torch::full({1}, 1.2f)},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::pact_activation(x, p[0], 3); }},
      {"dorefa act 2b", &act, {},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return qc::dorefa_activation(x, 1.0, 3); }},
      {"pact act 2b", &act, {torch::full({1}, 1.2f)},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::pact_activation(x, p[0], 3); }},
      {"nonuniform act 2b", &act, {torch::full({1}, 3.f), torch::full({1}, 3.f), torch::full({1}, 3.f)},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
         return qc::nonuniform_quantize(x, p, true, act_whole);
       }},
      {"xnor act STE", &act, {},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>&) {
         return qc::xnor_binarize(x, torch::Tensor(), qc::SignGrad::ste, act_whole);
       }},
      {"lqnet act 2b", &act, {},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return qc::lq_assign(x, lev, thr, act_whole, true)[0]; }},
      {"lsq wt 2b /channel", &wt, {torch::full({256, 1, 1, 1}, 0.1f)},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::lsq_quantize(x, p[0], lw); }},
      {"dorefa wt 2b tanh", &wt, {},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return qc::dorefa_weight(x, 1.0, 3); }},
      {"xnor wt /channel", &wt, {},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>&) {
         return qc::xnor_binarize(x, x.detach().reshape({256, -1}).abs().mean(1), qc::SignGrad::identity, wt_rows);
       }},
      {"nonuniform wt ternary", &wt, {torch::full({256, 1, 1, 1}, 20.f), torch::full({256, 1, 1, 1}, 20.f)},
       [&](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
         return qc::nonuniform_quantize(x, p, false, wt_rows);
       }},
  };
  std::printf("quant_kernels: forward+backward, best of %d runs (smaller tensors: %d), %d threads\n", reps, 4 * reps,
              torch::get_num_threads());
  std::printf("%-24s %-16s %12s %12s %8s\n", "kernel", "tensor", "fused ms", "composed ms", "ratio");
  for (const auto& c : cases) {
    const int r = c.x == &act ? reps : 4 * reps;  // smaller tensors: more runs
    const double f = time_ms(c.kernel, *c.x, c.params, r, true);
    const double a = time_ms(c.kernel, *c.x, c.params, r, false);
    std::string shape;
    for (int64_t d : c.x->sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    std::printf("%-24s %-16s %12.2f %12.2f %7.2fx\n", c.name.c_str(), shape.c_str(), f, a, a / f);
  }
  return 0;
}
