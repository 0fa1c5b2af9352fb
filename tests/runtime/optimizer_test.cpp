// Parameter groups (docs/training.md#parameter-groups-and-weight-decay) and the SGD / Adam updates
// (docs/training.md#optimizers) against hand-computed values; optimizer state round trip.
#include "train/optimizer.hpp"
#include "train/param_groups.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

using namespace qhost;

namespace {

struct ClipImpl : torch::nn::Module {
  explicit ClipImpl(std::vector<int64_t> shape) { clip = register_parameter("clip", torch::ones(shape)); }
  torch::Tensor clip;
};
TORCH_MODULE(Clip);

// A "quantized" conv: weight plus quant_weight / quant_activation submodules.
struct QConvImpl : torch::nn::Module {
  QConvImpl() {
    weight = register_parameter("weight", torch::randn({4, 4, 3, 3}));
    quant_weight = register_module("quant_weight", Clip(std::vector<int64_t>{4, 1, 1, 1}));
    quant_activation = register_module("quant_activation", Clip(std::vector<int64_t>{1, 4, 1, 1}));
  }
  torch::Tensor weight;
  Clip quant_weight{nullptr}, quant_activation{nullptr};
};
TORCH_MODULE(QConv);

struct NetImpl : torch::nn::Module {
  NetImpl() {
    stem = register_module("stem", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).bias(false)));
    dw = register_module("dw", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).groups(4).bias(false)));
    bn = register_module("bn", torch::nn::BatchNorm2d(4));
    q = register_module("q", QConv());
    fc = register_module("fc", torch::nn::Linear(4, 3));
    frozen = register_parameter("frozen", torch::ones({2}), /*requires_grad=*/false);
  }
  torch::nn::Conv2d stem{nullptr}, dw{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  QConv q{nullptr};
  torch::nn::Linear fc{nullptr};
  torch::Tensor frozen;
};
TORCH_MODULE(Net);

std::map<std::string, ParamGroup> by_name(const std::vector<ParamGroup>& groups) {
  std::map<std::string, ParamGroup> out;
  for (const auto& g : groups) out[g.name] = g;
  return out;
}

}  // namespace

TEST(ParamGroups, SmallTensorsAreNotDecayedUnlessDecaySmall) {
  Net net;
  ParamGroupRules rules;
  rules.lr = 0.1;
  rules.weight_decay = 1e-4;
  auto g = by_name(make_param_groups(*net, rules));
  EXPECT_EQ(g.count("frozen"), 0u);  // requires_grad == false: no group
  // The reference's rule counts a 1-input-channel conv ([C,1,k,k]) as small,
  // e.g. the stem of a Fashion-MNIST network.
  EXPECT_DOUBLE_EQ(g["stem.weight"].weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(g["fc.weight"].weight_decay, 1e-4);
  EXPECT_DOUBLE_EQ(g["q.weight"].weight_decay, 1e-4);
  EXPECT_DOUBLE_EQ(g["fc.bias"].weight_decay, 0.0);   // 1-D
  EXPECT_DOUBLE_EQ(g["bn.weight"].weight_decay, 0.0);  // 1-D
  EXPECT_DOUBLE_EQ(g["bn.bias"].weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(g["dw.weight"].weight_decay, 0.0);  // 4-D with shape[1] == 1 (depth-wise)
  EXPECT_DOUBLE_EQ(g["q.quant_weight.clip"].weight_decay, 0.0);  // [g,1,1,1]
  EXPECT_DOUBLE_EQ(g["q.quant_activation.clip"].weight_decay, 1e-4);  // [1,g,1,1], g > 1: not small
  // Registration order is kept.
  auto groups = make_param_groups(*net, rules);
  EXPECT_EQ(groups.front().name, "stem.weight");
  EXPECT_EQ(groups.back().name, "fc.bias");

  rules.decay_small = true;
  for (const auto& grp : make_param_groups(*net, rules)) EXPECT_DOUBLE_EQ(grp.weight_decay, 1e-4) << grp.name;
}

TEST(ParamGroups, CustomLrAndDecayBySubstring) {
  Net net;
  ParamGroupRules rules;
  rules.lr = 0.1;
  rules.custom_decay_list = {"clip"};
  rules.custom_decay = 0.02;
  rules.custom_lr_list = {"quant_weight", ""};
  rules.custom_lr = 1e-3;
  auto g = by_name(make_param_groups(*net, rules));
  EXPECT_DOUBLE_EQ(g["q.quant_weight.clip"].weight_decay, 0.02);
  EXPECT_DOUBLE_EQ(g["q.quant_activation.clip"].weight_decay, 0.02);
  EXPECT_DOUBLE_EQ(g["q.quant_weight.clip"].lr, 1e-3);
  EXPECT_FALSE(g["q.quant_weight.clip"].lr_constant);
  // `quant_weight` in the list: the latent weight of a weight-quantized layer is constant.
  EXPECT_DOUBLE_EQ(g["q.weight"].lr, 1e-3);
  EXPECT_TRUE(g["q.weight"].lr_constant);
  // Everything else: global lr (the empty entry matches nothing).
  EXPECT_DOUBLE_EQ(g["stem.weight"].lr, 0.1);
  EXPECT_FALSE(g["stem.weight"].lr_constant);
  EXPECT_DOUBLE_EQ(g["fc.weight"].lr, 0.1);
  EXPECT_DOUBLE_EQ(g["q.quant_activation.clip"].lr, 0.1);
}

TEST(Optimizer, SetLrScalesCustomGroupsAndKeepsConstantOnes) {
  Net net;
  OptimizerSettings s;
  s.rules.lr = 0.1;
  s.rules.custom_lr_list = {"quant_weight"};
  s.rules.custom_lr = 1e-3;
  Optimizer opt(*net, s);
  opt.set_lr(0.05);
  EXPECT_DOUBLE_EQ(opt.current_lr(), 0.05);
  auto state_lr = [&](const std::string& name) {
    // Check through a step with zero grad and no momentum effect: read back via groups order.
    for (size_t i = 0; i < opt.groups().size(); ++i)
      if (opt.groups()[i].name == name) return i;
    return size_t(-1);
  };
  ASSERT_NE(state_lr("q.weight"), size_t(-1));
  // Verify the actual update sizes: grad 1 everywhere, wd 0, momentum 0.
  OptimizerSettings plain;
  plain.momentum = 0.0;
  plain.rules.weight_decay = 0.0;
  plain.rules.lr = 0.1;
  plain.rules.custom_lr_list = {"quant_weight"};
  plain.rules.custom_lr = 1e-3;
  Net n2;
  Optimizer o2(*n2, plain);
  o2.set_lr(0.05);
  auto before_w = n2->q->weight.clone(), before_c = n2->q->quant_weight->clip.clone(),
       before_s = n2->stem->weight.clone();
  for (auto& p : n2->parameters())
    if (p.requires_grad()) p.mutable_grad() = torch::ones_like(p);
  o2.step();
  // float32 differences of O(1) values: compare with an absolute tolerance.
  auto near = [](const torch::Tensor& a, double v) { return torch::allclose(a, torch::full_like(a, v), 0, 1e-6); };
  EXPECT_TRUE(near(before_w - n2->q->weight, 1e-3));                  // constant
  EXPECT_TRUE(near(before_c - n2->q->quant_weight->clip, 5e-4));      // scaled with the schedule
  EXPECT_TRUE(near(before_s - n2->stem->weight, 0.05));
}

TEST(Optimizer, SgdNesterovMatchesTheFormula) {
  auto p = torch::tensor({1.0, -2.0}, torch::kFloat64).requires_grad_();
  struct M : torch::nn::Module {
    explicit M(torch::Tensor t) { w = register_parameter("w", std::move(t)); }
    torch::Tensor w;
  } m(p.detach().clone().to(torch::kFloat32).view({1, 2}));
  OptimizerSettings s;
  s.momentum = 0.9;
  s.nesterov = true;
  s.rules.lr = 0.1;
  s.rules.weight_decay = 0.01;
  s.rules.decay_small = true;
  Optimizer opt(m, s);
  // Hand computation: d = g + wd p; buf = d (first) else 0.9 buf + d; d = d + 0.9 buf; p -= lr d.
  std::vector<double> w{1.0, -2.0}, buf{0, 0};
  const std::vector<std::vector<double>> grads{{0.5, -1.0}, {0.25, 2.0}, {-1.0, 0.0}};
  for (size_t step = 0; step < grads.size(); ++step) {
    opt.zero_grad();
    m.w.mutable_grad() = torch::tensor({{grads[step][0], grads[step][1]}}, torch::kFloat32);
    opt.step();
    for (int i = 0; i < 2; ++i) {
      double d = grads[step][i] + 0.01 * w[i];
      buf[i] = step == 0 ? d : 0.9 * buf[i] + d;
      d = d + 0.9 * buf[i];
      w[i] -= 0.1 * d;
    }
    EXPECT_NEAR(m.w[0][0].item<double>(), w[0], 1e-6);
    EXPECT_NEAR(m.w[0][1].item<double>(), w[1], 1e-6);
  }
}

TEST(Optimizer, AdamMatchesTheFormula) {
  struct M : torch::nn::Module {
    M() { w = register_parameter("w", torch::tensor({0.5f, -1.5f})); }
    torch::Tensor w;
  } m;
  OptimizerSettings s;
  s.type = "adam";
  s.rules.lr = 0.01;
  s.rules.weight_decay = 0.1;  // 1-D: small, but decay_small decays it
  s.rules.decay_small = true;
  Optimizer opt(m, s);
  std::vector<double> w{0.5, -1.5}, mm{0, 0}, vv{0, 0};
  const std::vector<std::vector<double>> grads{{0.3, -0.2}, {0.1, 0.4}};
  for (size_t t = 1; t <= grads.size(); ++t) {
    opt.zero_grad();
    m.w.mutable_grad() = torch::tensor({grads[t - 1][0], grads[t - 1][1]}, torch::kFloat32);
    opt.step();
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i] + 0.1 * w[i];
      mm[i] = 0.9 * mm[i] + 0.1 * g;
      vv[i] = 0.999 * vv[i] + 0.001 * g * g;
      const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
      w[i] -= (0.01 / bc1) * mm[i] / (std::sqrt(vv[i]) / std::sqrt(bc2) + 1e-8);
    }
    EXPECT_NEAR(m.w[0].item<double>(), w[0], 1e-6);
    EXPECT_NEAR(m.w[1].item<double>(), w[1], 1e-6);
  }
}

namespace {
void train_steps(Net& net, Optimizer& opt, int steps, int seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < steps; ++i) {
    auto x = torch::randn({2, 1, 8, 8});
    opt.zero_grad();
    auto h = net->stem->forward(x);
    h = net->dw->forward(h);
    h = net->bn->forward(h);
    h = torch::nn::functional::conv2d(h, net->q->weight * net->q->quant_weight->clip,
                                      torch::nn::functional::Conv2dFuncOptions().padding(1)) *
        net->q->quant_activation->clip;
    auto y = net->fc->forward(h.mean({2, 3}));
    y.pow(2).sum().backward();
    opt.step();
  }
}
}  // namespace

TEST(Optimizer, StateRoundTripContinuesIdentically) {
  for (const std::string type : {"sgd", "adam"}) {
    OptimizerSettings s;
    s.type = type;
    s.rules.lr = 0.01;
    torch::manual_seed(7);
    Net a;
    Optimizer oa(*a, s);
    train_steps(a, oa, 3, 11);
    const auto saved_state = oa.state();
    ASSERT_FALSE(saved_state.empty());
    // A second model with the same weights, and the optimizer state loaded.
    torch::manual_seed(8);
    Net b;
    {
      torch::NoGradGuard ng;
      auto pa = a->named_parameters(), pb = b->named_parameters();
      for (const auto& item : pa) pb[item.key()].copy_(item.value());
      auto ba = a->named_buffers(), bb = b->named_buffers();
      for (const auto& item : ba) bb[item.key()].copy_(item.value());
    }
    Optimizer ob(*b, s);
    ob.load_state(saved_state, "test");
    train_steps(a, oa, 2, 12);
    train_steps(b, ob, 2, 12);
    for (const auto& item : a->named_parameters())
      EXPECT_TRUE(item.value().equal(b->named_parameters()[item.key()])) << type << " " << item.key();
  }
}

TEST(Optimizer, LoadStateRejectsUnknownParameters) {
  Net net;
  Optimizer opt(*net, OptimizerSettings{});
  NamedTensors bad{{"nope.weight/momentum_buffer", torch::zeros({1})}};
  try {
    opt.load_state(bad, "/runs/x/last.h5");
    FAIL();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::checkpoint);
    EXPECT_NE(std::string(e.what()).find("nope.weight"), std::string::npos);
  }
}

TEST(Optimizer, SettingsFromTable) {
  qsdk::Table t{{"type", "adam"},
                {"lr", 0.5},
                {"custom_lr_list", qsdk::List{qsdk::Value("alpha")}},
                {"custom_lr", 0.001},
                {"decay_small", true}};
  auto s = OptimizerSettings::from_table(t);
  EXPECT_EQ(s.type, "adam");
  EXPECT_DOUBLE_EQ(s.rules.lr, 0.5);
  ASSERT_EQ(s.rules.custom_lr_list.size(), 1u);
  EXPECT_EQ(s.rules.custom_lr_list[0], "alpha");
  EXPECT_TRUE(s.rules.decay_small);
  EXPECT_DOUBLE_EQ(s.rules.weight_decay, 1e-4);
}
