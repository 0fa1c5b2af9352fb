// GPU check of the fused CUDA kernels (LSQ, DoReFa, PACT): built as a PyTorch
// C++ extension by cuda_check.py on a machine with a CUDA PyTorch, it compares
// the CUDA kernels with the ATen-composed reference (on the GPU) and with the
// fused CPU kernels, forward and backward, and times fused vs composed on the GPU.
#include <dorefa/dorefa_math.hpp>
#include <lsq/lsq_math.hpp>
#include <pact/pact_math.hpp>
#include <quant_common/kernels.hpp>

#include <torch/extension.h>

#include <c10/cuda/CUDAFunctions.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <string>

// The shared quantizer math and each method's own (plugins/<method>/include/<method>/<method>_math.hpp)
// under one name.
namespace qc {
using namespace qplug_quant_common;
using namespace qplug_dorefa;
using namespace qplug_lsq;
using namespace qplug_pact;
}  // namespace qc

namespace {

using Kernel = std::function<torch::Tensor(const torch::Tensor&, const std::vector<torch::Tensor>&)>;

struct Run {
  torch::Tensor y, gx;
  std::vector<torch::Tensor> gp;
};

Run run(const Kernel& k, const torch::Tensor& x0, const std::vector<torch::Tensor>& p0, const torch::Tensor& g,
        bool fused) {
  qc::set_use_fused_kernels(fused);
  Run r;
  torch::Tensor x = x0.detach().clone().requires_grad_(true);
  std::vector<torch::Tensor> p;
  for (const auto& t : p0) p.push_back(t.detach().clone().requires_grad_(true));
  r.y = k(x, p);
  r.y.backward(g);
  r.y = r.y.detach().cpu();
  r.gx = x.grad().cpu();
  for (auto& t : p) r.gp.push_back(t.grad().defined() ? t.grad().cpu() : torch::zeros_like(t).cpu());
  qc::set_use_fused_kernels(true);
  return r;
}

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>() /
         (1 + b.abs().max().item<double>());
}

double time_ms(const Kernel& k, const torch::Tensor& x0, const std::vector<torch::Tensor>& p0, bool fused) {
  torch::Tensor g = torch::ones_like(x0);
  double best = 1e30;
  for (int r = 0; r < 12; ++r) {
    qc::set_use_fused_kernels(fused);
    torch::Tensor x = x0.detach().requires_grad_(true);
    std::vector<torch::Tensor> p;
    for (const auto& t : p0) p.push_back(t.detach().clone().requires_grad_(true));
    c10::cuda::device_synchronize();
    auto t0 = std::chrono::steady_clock::now();
    torch::Tensor y = k(x, p);
    y.backward(g);
    c10::cuda::device_synchronize();
    auto t1 = std::chrono::steady_clock::now();
    if (r >= 2) best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  qc::set_use_fused_kernels(true);
  return best;
}

/// printf-style formatting (this check avoids iostreams: a toolchain seen on the GPU
/// machine crashed in ostream's locale facets inside extensions).
template <class... A>
std::string fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a...);
  return buf;
}

std::string check() {
  std::string os;
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  torch::Tensor act = (torch::randn({4, 8, 9, 9}) * 1.2 + 0.3).to(cuda.device());
  torch::Tensor wt = (torch::randn({16, 8, 3, 3}) * 0.3).to(cuda.device());
  struct Case {
    std::string name;
    torch::Tensor x;
    std::vector<torch::Tensor> p;
    Kernel k;
  };
  std::vector<Case> cases;
  for (bool half : {true, false})
    for (int64_t groups : {1, 4, 8})
      for (double gf : {1.0, 0.03, 3.0})
        for (bool ste : {false, true}) {
          qc::LsqArgs a;
          a.half_range = half;
          a.grad_factor = gf;
          a.ste_scale = ste;
          a.layout = qc::GroupLayout::channel_blocks(act, groups);
          torch::Tensor clip = (torch::rand({groups}) * 0.6 + 0.3).to(cuda.device());
          cases.push_back({fmt("lsq act half=%d G=%lld gf=%g ste_scale=%d", half ? 1 : 0, (long long)groups, gf, ste ? 1 : 0), ste ? act * 4 : act, {clip},
                           [a](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
                             return qc::lsq_quantize(x, p[0], a);
                           }});
        }
  {
    qc::LsqArgs a;
    a.half_range = false;
    a.layout = qc::GroupLayout::flat_blocks(wt.numel(), 16);
    cases.push_back({"lsq wt per-channel", wt, {(torch::rand({16, 1, 1, 1}) + 0.2).to(cuda.device())},
                     [a](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
                       return qc::lsq_quantize(x, p[0], a);
                     }});
  }
  for (double c : {1.0, 2.0})
    for (int64_t n : {1, 3}) {
      cases.push_back({"dorefa act c=" + std::to_string(c) + " n=" + std::to_string(n), act, {},
                       [c, n](const torch::Tensor& x, const std::vector<torch::Tensor>&) {
                         return qc::dorefa_activation(x, c, n);
                       }});
      cases.push_back({"dorefa wt c=" + std::to_string(c) + " n=" + std::to_string(n), wt, {},
                       [c, n](const torch::Tensor& x, const std::vector<torch::Tensor>&) {
                         return qc::dorefa_weight(x, c, n);
                       }});
    }
  cases.push_back({"pact act n=3", act, {torch::full({1}, 0.9f, cuda)},
                   [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) {
                     return qc::pact_activation(x, p[0], 3);
                   }});
  int failures = 0;
  for (const auto& c : cases) {
    torch::Tensor g = torch::randn(c.x.sizes(), cuda);
    Run f = run(c.k, c.x, c.p, g, true);
    Run a = run(c.k, c.x, c.p, g, false);
    std::vector<torch::Tensor> pc;
    for (const auto& t : c.p) pc.push_back(t.cpu());
    Run h = run(c.k, c.x.cpu(), pc, g.cpu(), true);
    double d = std::max(maxdiff(f.y, a.y), maxdiff(f.gx, a.gx));
    double dh = std::max(maxdiff(f.y, h.y), maxdiff(f.gx, h.gx));
    for (size_t i = 0; i < f.gp.size(); ++i) {
      d = std::max(d, maxdiff(f.gp[i], a.gp[i]));
      dh = std::max(dh, maxdiff(f.gp[i], h.gp[i]));
    }
    const bool ok = d <= 1e-5 && dh <= 1e-5;
    failures += !ok;
    os += fmt("%s %s: vs composed(cuda) %.3g, vs fused(cpu) %.3g\n", ok ? "ok  " : "FAIL", c.name.c_str(), d, dh);
  }
  os += fmt("cuda kernel checks: %d/%d ok\n", (int)cases.size() - failures, (int)cases.size());
  torch::Tensor big = (torch::randn({128, 64, 32, 32}, cuda) * 0.8 + 0.4);
  qc::LsqArgs la;
  la.layout = qc::GroupLayout::whole(big.numel());
  std::vector<Case> timed = {
      {"lsq act 2b", big, {torch::ones({1}, cuda)},
       [la](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::lsq_quantize(x, p[0], la); }},
      {"dorefa act 2b", big, {},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>&) { return qc::dorefa_activation(x, 1.0, 3); }},
      {"pact act 2b", big, {torch::full({1}, 1.2f, cuda)},
       [](const torch::Tensor& x, const std::vector<torch::Tensor>& p) { return qc::pact_activation(x, p[0], 3); }},
  };
  torch::Tensor bigw = torch::randn({256, 256, 3, 3}, cuda) * 0.05;
  timed.push_back({"dorefa wt 2b", bigw, {}, [](const torch::Tensor& x, const std::vector<torch::Tensor>&) {
                     return qc::dorefa_weight(x, 1.0, 3);
                   }});
  for (const auto& c : timed) {
    const double f = time_ms(c.k, c.x, c.p, true), a = time_ms(c.k, c.x, c.p, false);
    os += fmt("time %-14s numel %lld: fused %.3f ms, composed %.3f ms, ratio %.2fx\n", c.name.c_str(),
              (long long)c.x.numel(), f, a, a / f);
  }
  return os;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // backward() must not run under the GIL.
  m.def("check", &check, "compare and time the CUDA quantizer kernels", pybind11::call_guard<pybind11::gil_scoped_release>());
}
