// Fused kernels vs the ATen-composed reference, and the worked examples of docs/methods.md.
#include <dorefa/dorefa_math.hpp>
#include <lqnet/lqnet_math.hpp>
#include <lsq/lsq_math.hpp>
#include <nonuniform/nonuniform_math.hpp>
#include <pact/pact_math.hpp>
#include <quant_common/kernels.hpp>
#include <quant_common/options.hpp>
#include <xnor/xnor_math.hpp>

#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <string>
#include <torch/torch.h>

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

/// Runs f on (x, params...) with fused then composed kernels; compares outputs and gradients.
void expect_same(const std::function<torch::Tensor(const torch::Tensor&, const std::vector<torch::Tensor>&)>& f,
                 const torch::Tensor& x0, const std::vector<torch::Tensor>& p0, double tol = 1e-5) {
  std::vector<torch::Tensor> outs, gx;
  std::vector<std::vector<torch::Tensor>> gp;
  torch::Tensor g = torch::randn(x0.sizes());
  for (bool fused : {true, false}) {
    qc::set_use_fused_kernels(fused);
    torch::Tensor x = x0.clone().requires_grad_(true);
    std::vector<torch::Tensor> p;
    for (const auto& t : p0) p.push_back(t.clone().requires_grad_(true));
    torch::Tensor y = f(x, p);
    y.backward(g);
    outs.push_back(y.detach());
    gx.push_back(x.grad().defined() ? x.grad() : torch::zeros_like(x));
    std::vector<torch::Tensor> gps;
    for (auto& t : p) gps.push_back(t.grad().defined() ? t.grad() : torch::zeros_like(t));
    gp.push_back(gps);
  }
  qc::set_use_fused_kernels(true);
  auto close = [&](const torch::Tensor& a, const torch::Tensor& b, const char* what) {
    const double bound = tol * (1 + b.abs().max().item<double>());
    EXPECT_LE((a - b).abs().max().item<double>(), bound) << what;
  };
  close(outs[0], outs[1], "output");
  close(gx[0], gx[1], "grad_input");
  for (size_t i = 0; i < p0.size(); ++i) close(gp[0][i], gp[1][i], "grad_param");
}

TEST(QuantKernels, LsqFusedMatchesComposed) {
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({4, 6, 5, 5}) * 1.2 + 0.3;
  for (bool half : {true, false}) {
    for (int64_t groups : {1, 3, 6}) {
      for (double gf : {1.0, 0.03, 3.0, 1.5}) {
        for (bool ste_scale : {false, true}) {
          qc::LsqArgs a;
          a.n = groups == 3 ? 2.0 : 3.0;
          a.half_range = half;
          a.grad_factor = gf;
          a.ste_scale = ste_scale;
          a.layout = qc::GroupLayout::channel_blocks(x, groups);
          torch::Tensor clip = torch::rand({groups}) * 0.6 + 0.2;
          if (groups > 1) clip[1] = -clip[1];  // |clip| is used; the gradient carries sign(clip)
          expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>& p) {
            return qc::lsq_quantize(t, p[0], a);
          }, ste_scale ? x * 4 : x, {clip});
        }
      }
    }
  }
  // Weight layout: flat blocks.
  torch::Tensor w = torch::randn({8, 4, 3, 3});
  qc::LsqArgs a;
  a.half_range = false;
  a.layout = qc::GroupLayout::flat_blocks(w.numel(), 2);
  expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>& p) { return qc::lsq_quantize(t, p[0], a); },
              w, {torch::tensor({0.7f, 1.3f})});
}

TEST(QuantKernels, DorefaFusedMatchesComposed) {
  torch::manual_seed(2);
  torch::Tensor x = torch::randn({3, 5, 7, 7}) + 0.4;
  for (double c : {1.0, 2.0, 0.5})
    for (int64_t n : {1, 2, 3, 7}) {
      expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) { return qc::dorefa_activation(t, c, n); },
                  x, {});
      expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) { return qc::dorefa_weight(t, c, n); },
                  x * 0.3, {});
    }
  expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) { return qc::dorefa_binarize(t); }, x, {});
}

TEST(QuantKernels, PactFusedMatchesComposed) {
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({3, 5, 7, 7}) + 0.4;
  for (int64_t n : {1, 3, 7})
    expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>& p) { return qc::pact_activation(t, p[0], n); },
                x, {torch::tensor({0.9f})});
}

TEST(QuantKernels, NonUniformFusedMatchesComposed) {
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({3, 4, 6, 6}) * 0.8 + 0.4;
  for (int64_t groups : {1, 2, 4})
    for (int64_t k : {1, 2, 3}) {
      auto layout = qc::GroupLayout::channel_blocks(x, groups);
      std::vector<torch::Tensor> al;
      for (int64_t j = 0; j < k; ++j) al.push_back(torch::rand({groups}) * 3 + 1);
      if (k > 1) al[1][0] = -al[1][0].item<float>();
      expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>& p) {
        return qc::nonuniform_quantize(t, p, true, layout);
      }, x, al);
    }
  auto layout = qc::GroupLayout::flat_blocks(x.numel(), 4);
  expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>& p) {
    return qc::nonuniform_quantize(t, p, false, layout);
  }, x - 0.4, {torch::rand({4}) + 0.8, torch::rand({4}) + 0.8});
}

TEST(QuantKernels, XnorAndLqFusedMatchComposed) {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({3, 4, 6, 6});
  for (auto g : {qc::SignGrad::identity, qc::SignGrad::ste, qc::SignGrad::triangle}) {
    expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) {
      return qc::xnor_binarize(t, torch::Tensor(), g, qc::GroupLayout::whole(t.numel()));
    }, x, {});
    auto layout = qc::GroupLayout::flat_blocks(x.numel(), 3);
    expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) {
      return qc::xnor_binarize(t, torch::tensor({0.5f, 1.f, 2.f}), g, layout);
    }, x, {});
  }
  for (bool clip_top : {true, false}) {
    auto layout = qc::GroupLayout::channel_blocks(x, 2);
    torch::Tensor lev = torch::tensor({{-1.f, -0.5f}, {0.f, 0.f}, {0.4f, 0.5f}, {1.f, 1.5f}});
    torch::Tensor thr = (lev.slice(0, 0, 3) + lev.slice(0, 1, 4)) / 2;
    expect_same([&](const torch::Tensor& t, const std::vector<torch::Tensor>&) {
      return qc::lq_assign(t, lev, thr, layout, clip_top)[0];
    }, x, {});
    qc::set_use_fused_kernels(true);
    torch::Tensor i1 = qc::lq_assign(x, lev, thr, layout, clip_top)[1];
    qc::set_use_fused_kernels(false);
    torch::Tensor i2 = qc::lq_assign(x, lev, thr, layout, clip_top)[1];
    qc::set_use_fused_kernels(true);
    EXPECT_TRUE(torch::equal(i1, i2));
  }
}

TEST(QuantKernels, LsqWorkedExamples) {
  // docs/methods.md#lsq-worked-examples, s = 1, n = 3.
  qc::LsqArgs a;
  a.layout = qc::GroupLayout::whole(7);
  torch::Tensor x = torch::tensor({-0.2f, 0.f, 0.1f, 1.f / 6.f, 0.5f, 0.9f, 1.4f}).reshape({1, 7});
  torch::Tensor clip = torch::ones({1}, torch::requires_grad());
  for (int i = 0; i < 7; ++i) {
    // Per-element clip gradient: one element at a time.
    clip.mutable_grad() = torch::Tensor();
    torch::Tensor xi = x.slice(1, i, i + 1).contiguous();
    a.layout = qc::GroupLayout::whole(1);
    qc::lsq_quantize(xi, clip, a).sum().backward();
    const float expect_ds[] = {0.f, 0.f, -0.1f, -1.f / 6.f, 1.f / 6.f, 0.1f, 1.f};
    EXPECT_NEAR(clip.grad().item<float>(), expect_ds[i], 1e-6) << i;
  }
  a.layout = qc::GroupLayout::whole(7);
  torch::Tensor y = qc::lsq_quantize(x, clip, a);
  torch::Tensor expect = torch::tensor({0.f, 0.f, 0.f, 0.f, 2.f / 3.f, 1.f, 1.f}).reshape({1, 7});
  EXPECT_TRUE(torch::allclose(y, expect, 0, 1e-6)) << y;
  a.half_range = false;
  torch::Tensor xf = torch::tensor({-1.2f, -0.5f, 0.f, 0.2f, 1.f / 3.f, 0.7f}).reshape({1, 6});
  a.layout = qc::GroupLayout::whole(6);
  torch::Tensor yf = qc::lsq_quantize(xf, clip, a);
  torch::Tensor ef = torch::tensor({-1.f, -1.f / 3.f, 1.f / 3.f, 1.f / 3.f, 1.f / 3.f, 1.f}).reshape({1, 6});
  EXPECT_TRUE(torch::allclose(yf, ef, 0, 1e-6)) << yf;
}

TEST(QuantKernels, LsqFusedIsBitIdenticalToTheElementFormula) {
  // The fused loops may multiply by 1/n instead of dividing by n where that is
  // exact for every level index; outputs and input gradients must still equal
  // the formula of docs/methods.md#lsq evaluated with divisions, element by element, for level
  // counts where the shortcut applies (n = 1, 2, 3, 5) and where it does not (6, 7, 15).
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({2, 3, 40, 41}) * 0.9 + 0.2;
  const torch::Tensor g = torch::randn(x.sizes());
  const float step = 0.731f;
  for (bool half : {true, false}) {
    for (double n : {1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 15.0}) {
      SCOPED_TRACE(std::string(half ? "half" : "full") + " n=" + std::to_string(n));
      qc::LsqArgs a;
      a.n = n;
      a.half_range = half;
      a.layout = qc::GroupLayout::whole(x.numel());
      torch::Tensor xr = x.clone().requires_grad_(true);
      torch::Tensor clip = torch::full({1}, step, torch::requires_grad());
      torch::Tensor y = qc::lsq_quantize(xr, clip, a);
      y.backward(g);
      const float nf = static_cast<float>(n);
      torch::Tensor ey = torch::empty_like(x), egx = torch::empty_like(x);
      const float* xp = x.data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float u = xp[i] / step;
        const float lo = half ? 0.f : -1.f;
        const float c = std::min(std::max(u, lo), 1.f);
        const float q = half ? std::nearbyint(c * nf) / nf : std::nearbyint(((c + 1.f) / 2.f) * nf) / nf;
        ey.data_ptr<float>()[i] = (half ? q : 2.f * q - 1.f) * step;
        egx.data_ptr<float>()[i] = (u >= lo && u <= 1.f) ? gp[i] : 0.f;
      }
      EXPECT_TRUE(torch::equal(y.detach(), ey)) << (y.detach() - ey).abs().max();
      EXPECT_TRUE(torch::equal(xr.grad(), egx));
    }
  }
}

TEST(QuantKernels, DorefaAndPactActivationsAreBitIdenticalToTheElementFormula) {
  // As for LSQ: dividing by scale = n / clip, or multiplying by its reciprocal
  // where that is exact for every level, must give the formula's floats.
  torch::manual_seed(8);
  const torch::Tensor x = torch::randn({2, 3, 40, 41}) * 0.9 + 0.3;
  for (double clip : {1.0, 0.8, 2.5}) {
    for (int64_t n : {1, 2, 3, 7, 15}) {
      SCOPED_TRACE("clip=" + std::to_string(clip) + " n=" + std::to_string(n));
      const float c = static_cast<float>(clip);
      // DoReFa: scale computed in double, then float; PACT: n / alpha in float.
      const float dscale = static_cast<float>(static_cast<double>(n) / clip);
      const float pscale = static_cast<float>(n) / c;
      torch::Tensor ed = torch::empty_like(x), ep = torch::empty_like(x);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float v = std::min(std::max(x.data_ptr<float>()[i], 0.f), c);
        ed.data_ptr<float>()[i] = std::nearbyint(v * dscale) / dscale;
        ep.data_ptr<float>()[i] = std::nearbyint(v * pscale) / pscale;
      }
      const torch::Tensor yd = qc::dorefa_activation(x, clip, n);
      const torch::Tensor yp = qc::pact_activation(x, torch::full({1}, c), n);
      EXPECT_TRUE(torch::equal(yd, ed)) << (yd - ed).abs().max();
      EXPECT_TRUE(torch::equal(yp.detach(), ep)) << (yp.detach() - ep).abs().max();
    }
  }
}

TEST(QuantKernels, DorefaAndNonUniformWorkedExamples) {
  torch::Tensor w = torch::tensor({-0.5f, 0.f, 0.2f, 1.f});
  torch::Tensor y = qc::dorefa_weight(w, 1.0, 3);
  EXPECT_TRUE(torch::allclose(y, torch::tensor({-1.f / 3.f, 1.f / 3.f, 1.f / 3.f, 1.f}), 0, 1e-6)) << y;
  torch::Tensor x = torch::tensor({0.1f, 0.2f, 0.4f, 0.6f, 0.9f, 2.f});
  std::vector<torch::Tensor> al = {torch::full({1}, 3.f), torch::full({1}, 3.f), torch::full({1}, 3.f)};
  torch::Tensor q = qc::nonuniform_quantize(x, al, true, qc::GroupLayout::whole(6));
  EXPECT_TRUE(torch::equal(q, torch::tensor({0.f, 1.f, 1.f, 2.f, 3.f, 3.f}))) << q;
}

TEST(QuantSetup, Derivations) {
  EXPECT_EQ(qc::effective_gradient_scale(1.5), 1.0);
  EXPECT_EQ(qc::effective_gradient_scale(1.0), 1.0);
  EXPECT_EQ(qc::effective_gradient_scale(2.5), 2.5);
  EXPECT_EQ(qc::effective_gradient_scale(0.03), 0.03);
  qc::CommonOptions o;
  qsdk::QuantizerContext ctx;
  ctx.target = qsdk::QuantTarget::weight;
  ctx.shape = {8, 4, 3, 3};
  auto s = qc::make_setup(o, ctx);
  EXPECT_EQ(s.groups, 8);
  EXPECT_EQ(s.fan, 36);
  EXPECT_EQ(s.n_elements, 36);
  EXPECT_FALSE(s.half_range);
  o.quant_group = -4;  // groups of 4 (out,in) pairs
  EXPECT_EQ(qc::make_setup(o, ctx).groups, 8);
  o.quant_group = 5;
  EXPECT_THROW(qc::make_setup(o, ctx), qsdk::Error);
  o = qc::CommonOptions();
  ctx.target = qsdk::QuantTarget::activation;
  ctx.shape = {1, 4, 1, 1};
  ctx.batch_size = 2;
  ctx.input_size = 6;
  o.grad_scale = qc::GradScale::scale_element;
  s = qc::make_setup(o, ctx);
  EXPECT_EQ(s.groups, 1);
  EXPECT_EQ(s.n_elements, 288);
  EXPECT_NEAR(s.grad_factor, 0.5 / std::sqrt(288.0), 1e-15);
  EXPECT_TRUE(s.half_range);
  o.levels = 3;
  EXPECT_EQ(qc::make_setup(o, ctx).levels, 3);
}

}  // namespace
