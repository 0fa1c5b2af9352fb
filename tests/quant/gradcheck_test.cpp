// Finite-difference checks (double precision) of the straight-through gradients
// of every learnable quantizer parameter, and of the DoReFa tanh/max path.
//
// A straight-through round has no classical derivative, so each check
// differentiates the "frozen" function the STE defines: every round(v) becomes
// v + (round(v0) - v0) with the offset fixed at the evaluation point, and the
// detached statistics are held constant. Its central differences must equal the
// kernel's analytic gradient (composed in double, fused in float32).
#include <dorefa/dorefa_math.hpp>
#include <lsq/lsq_math.hpp>
#include <nonuniform/nonuniform_math.hpp>
#include <pact/pact_math.hpp>
#include <quant_common/kernels.hpp>
#include <quant_common/options.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>

// The shared quantizer math and each method's own (plugins/<method>/include/<method>/<method>_math.hpp)
// under one name.
namespace qc {
using namespace qplug_quant_common;
using namespace qplug_dorefa;
using namespace qplug_lsq;
using namespace qplug_nonuniform;
using namespace qplug_pact;
}  // namespace qc

namespace {

using Fn = std::function<torch::Tensor(const torch::Tensor& p)>;

/// Central differences of sum(g * f(p)) w.r.t. each element of p.
torch::Tensor numeric_grad(const Fn& f, const torch::Tensor& p0, const torch::Tensor& g, double eps = 1e-6) {
  torch::Tensor out = torch::zeros_like(p0);
  torch::NoGradGuard ng;
  for (int64_t i = 0; i < p0.numel(); ++i) {
    torch::Tensor a = p0.clone(), b = p0.clone();
    a.view(-1)[i] += eps;
    b.view(-1)[i] -= eps;
    out.view(-1)[i] = ((f(a) * g).sum() - (f(b) * g).sum()) / (2 * eps);
  }
  return out;
}

/// Analytic gradient of sum(g * kernel(p)) w.r.t. p, in double (composed) and float (fused).
std::pair<torch::Tensor, torch::Tensor> analytic(const Fn& kernel, const torch::Tensor& p0, const torch::Tensor& g) {
  torch::Tensor pd = p0.clone().requires_grad_(true);
  (kernel(pd) * g).sum().backward();
  torch::Tensor pf = p0.to(torch::kFloat).requires_grad_(true);
  (kernel(pf) * g.to(torch::kFloat)).sum().backward();
  return {pd.grad(), pf.grad().to(torch::kDouble)};
}

void expect_grad(const Fn& frozen, const Fn& kernel, const torch::Tensor& p0, const torch::Tensor& g,
                 const char* what) {
  const torch::Tensor num = numeric_grad(frozen, p0, g);
  const auto [ad, af] = analytic(kernel, p0, g);
  const double scale = 1 + num.abs().max().item<double>();
  EXPECT_LE((ad - num).abs().max().item<double>(), 1e-6 * scale) << what << "\nnumeric " << num << "\ndouble " << ad;
  EXPECT_LE((af - num).abs().max().item<double>(), 2e-4 * scale) << what << "\nnumeric " << num << "\nfloat " << af;
}

torch::Tensor round_offset(const torch::Tensor& v) { return torch::round(v) - v; }

TEST(QuantGradcheck, LsqClip) {
  torch::manual_seed(11);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor x = torch::randn({2, 4, 3, 3}, opt) * 0.8 + 0.2;
  torch::Tensor g = torch::randn({2, 4, 3, 3}, opt);
  for (bool half : {true, false}) {
    for (double gf : {1.0, 0.25, 3.0}) {
      qc::LsqArgs a;
      a.n = 3.0;
      a.half_range = half;
      a.grad_factor = gf;
      a.layout = qc::GroupLayout::channel_blocks(x, 2);
      torch::Tensor clip0 = torch::tensor({0.9, -0.6}, opt);  // negative: |clip| with sign in the gradient
      const double lo = half ? 0.0 : -1.0;
      auto grouped = [&](const torch::Tensor& c) { return c.abs().reshape({1, 2, 1}); };
      torch::Tensor xv = x.reshape({2, 2, 18});
      torch::Tensor c0 = torch::clamp(xv / grouped(clip0), lo, 1.0);
      torch::Tensor off = half ? round_offset(c0 * a.n) : round_offset((c0 + 1) / 2 * a.n);
      const double f = qc::effective_gradient_scale(gf);
      // GradientScale(|clip|, f): value |clip|, gradient f; as a frozen function s(p) = s0 + f (|p| - s0).
      Fn frozen = [&](const torch::Tensor& p) {
        torch::Tensor s = grouped(clip0) + f * (grouped(p) - grouped(clip0));
        torch::Tensor c = torch::clamp(xv / s, lo, 1.0);
        torch::Tensor y = half ? ((c * a.n + off) / a.n) * s : (2 * (((c + 1) / 2 * a.n + off) / a.n) - 1) * s;
        return y.view(x.sizes());
      };
      Fn kernel = [&](const torch::Tensor& p) { return qc::lsq_quantize(x.to(p.scalar_type()), p, a); };
      expect_grad(frozen, kernel, clip0, g, half ? "lsq half" : "lsq full");
    }
  }
}

TEST(QuantGradcheck, PactClip) {
  torch::manual_seed(12);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor x = torch::randn({2, 3, 4, 4}, opt) + 0.4;
  torch::Tensor g = torch::randn({2, 3, 4, 4}, opt);
  torch::Tensor a0 = torch::tensor({0.83}, opt);
  const int64_t n = 3;
  torch::Tensor v0 = torch::min(torch::clamp_min(x, 0.0), a0);
  torch::Tensor off = round_offset(v0 * (n / a0));
  Fn frozen = [&](const torch::Tensor& a) {
    torch::Tensor v = torch::where(torch::clamp_min(x, 0.0) < a, torch::clamp_min(x, 0.0), a);
    return (v * (n / a0) + off) / (n / a0);  // alpha is a constant inside the rounding
  };
  Fn kernel = [&](const torch::Tensor& a) { return qc::pact_activation(x.to(a.scalar_type()), a, n); };
  expect_grad(frozen, kernel, a0, g, "pact alpha");
}

TEST(QuantGradcheck, NonUniformSlopes) {
  torch::manual_seed(13);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor x = torch::rand({2, 4, 3, 3}, opt) * 1.6 - 0.2;
  torch::Tensor g = torch::randn({2, 4, 3, 3}, opt);
  auto layout = qc::GroupLayout::channel_blocks(x, 2);
  torch::Tensor xv = x.reshape({2, 2, 18});
  std::vector<torch::Tensor> al0 = {torch::tensor({2.7, -3.4}, opt), torch::tensor({3.1, 2.2}, opt),
                                    torch::tensor({-2.5, 3.6}, opt)};
  auto gp = [](const torch::Tensor& a) { return a.abs().reshape({1, 2, 1}); };
  // Offsets of the three rounds at the evaluation point.
  torch::Tensor t0 = gp(al0[0]) * xv, d1 = xv - 1.0 / gp(al0[0]);
  torch::Tensor t1 = gp(al0[1]) * d1, t2 = gp(al0[2]) * (d1 - 1.0 / gp(al0[1]));
  torch::Tensor o0 = round_offset(torch::clamp(t0, 0, 1)), o1 = round_offset(torch::clamp(t1, 0, 1)),
                o2 = round_offset(torch::clamp(t2, 0, 1));
  for (int j = 0; j < 3; ++j) {
    Fn frozen = [&](const torch::Tensor& p) {
      std::vector<torch::Tensor> a = al0;
      a[j] = p;
      torch::Tensor e1 = xv - 1.0 / gp(a[0]);
      torch::Tensor y = (torch::clamp(gp(a[0]) * xv, 0, 1) + o0) + (torch::clamp(gp(a[1]) * e1, 0, 1) + o1) +
                        (torch::clamp(gp(a[2]) * (e1 - 1.0 / gp(a[1])), 0, 1) + o2);
      return y.view(x.sizes());
    };
    Fn kernel = [&](const torch::Tensor& p) {
      std::vector<torch::Tensor> a;
      for (int k = 0; k < 3; ++k) a.push_back(k == j ? p : al0[k].to(p.scalar_type()));
      return qc::nonuniform_quantize(x.to(p.scalar_type()), a, true, layout);
    };
    expect_grad(frozen, kernel, al0[j], g, "nonuniform alpha");
  }
  // Signed ternary form (weights).
  auto wl = qc::GroupLayout::flat_blocks(x.numel(), 2);
  torch::Tensor w = x - 0.6, wv = w.reshape({2, 36});
  std::vector<torch::Tensor> b0 = {torch::tensor({2.1, 1.3}, opt), torch::tensor({-1.7, 2.4}, opt)};
  auto gw = [](const torch::Tensor& a) { return a.abs().reshape({2, 1}); };
  torch::Tensor q0 = round_offset(torch::clamp(gw(b0[0]) * wv, -1, 0)), q1 = round_offset(torch::clamp(gw(b0[1]) * wv, 0, 1));
  for (int j = 0; j < 2; ++j) {
    Fn frozen = [&](const torch::Tensor& p) {
      std::vector<torch::Tensor> a = b0;
      a[j] = p;
      return ((torch::clamp(gw(a[0]) * wv, -1, 0) + q0) + (torch::clamp(gw(a[1]) * wv, 0, 1) + q1)).view(w.sizes());
    };
    Fn kernel = [&](const torch::Tensor& p) {
      std::vector<torch::Tensor> a;
      for (int k = 0; k < 2; ++k) a.push_back(k == j ? p : b0[k].to(p.scalar_type()));
      return qc::nonuniform_quantize(w.to(p.scalar_type()), a, false, wl);
    };
    expect_grad(frozen, kernel, b0[j], g, "nonuniform ternary alpha");
  }
}

TEST(QuantGradcheck, DorefaWeightThroughMax) {
  torch::manual_seed(14);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor w0 = torch::randn({3, 2, 2, 2}, opt) * 0.5;
  torch::Tensor g = torch::randn({3, 2, 2, 2}, opt);
  const int64_t n = 3;
  const double scale = n / 1.0;
  torch::Tensor t0 = torch::tanh(w0);
  torch::Tensor off = round_offset((t0 / (2 * t0.abs().max()) + 0.5) * scale);
  Fn frozen = [&](const torch::Tensor& w) {
    torch::Tensor t = torch::tanh(w);
    torch::Tensor u = t / (2 * t.abs().max()) + 0.5;
    return 2 * ((u * scale + off) / scale) - 1;
  };
  Fn kernel = [&](const torch::Tensor& w) { return qc::dorefa_weight(w, 1.0, n); };
  expect_grad(frozen, kernel, w0, g, "dorefa weight");
}

TEST(QuantGradcheck, LsqInput) {
  torch::manual_seed(15);
  const auto opt = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor x0 = torch::randn({2, 3, 2, 2}, opt) * 0.7;
  torch::Tensor g = torch::randn({2, 3, 2, 2}, opt);
  torch::Tensor clip = torch::tensor({0.8}, opt);
  qc::LsqArgs a;
  a.half_range = false;
  a.layout = qc::GroupLayout::whole(x0.numel());
  torch::Tensor c0 = torch::clamp(x0 / 0.8, -1.0, 1.0);
  torch::Tensor off = round_offset((c0 + 1) / 2 * 3.0);
  Fn frozen = [&](const torch::Tensor& x) {
    torch::Tensor c = torch::clamp(x / 0.8, -1.0, 1.0);
    return (2 * (((c + 1) / 2 * 3.0 + off) / 3.0) - 1) * 0.8;
  };
  Fn kernel = [&](const torch::Tensor& x) { return qc::lsq_quantize(x, clip.to(x.scalar_type()), a); };
  expect_grad(frozen, kernel, x0, g, "lsq input");
}

}  // namespace
