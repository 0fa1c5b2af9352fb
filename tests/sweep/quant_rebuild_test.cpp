// QuantRebuilder and Optimizer::rebind in process, on one LSQ-quantized conv:
// the number of distinct quantized values follows a bits change, learned
// state is carried over, option-derived state is not, the optimizer steps the
// new tensors with its momentum kept, and the run's random sequence is untouched.
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"
#include "quant/quant_rebuild.hpp"
#include "train/optimizer.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>

namespace {

using qsdk::Table;
using qsdk::Value;

qhost::Registry& registry() {
  static qhost::Registry r;
  static qhost::PluginLoader loader(r);  // $QTOOL_PLUGIN_PATH (set by CTest)
  static bool loaded = (loader.load("lsq"), true);
  (void)loaded;
  return r;
}

/// One 3x3 conv made by the host layer factory, as a model would hold it.
struct Net : torch::nn::Module {
  std::shared_ptr<qhost::QuantConv2dImpl> conv;
};

struct Fixture {
  Table quant;
  std::unique_ptr<qhost::LayerFactory> factory;
  std::shared_ptr<Net> net = std::make_shared<Net>();
  std::unique_ptr<qhost::QuantRebuilder> rebuilder;

  explicit Fixture(int64_t bits) {
    quant["activation"] = Value(Table{{"type", Value("lsq")}, {"bits", Value(bits)}});
    quant["weight"] = Value(Table{{"type", Value("lsq")}, {"bits", Value(int64_t{2})}});
    auto maker = [](const Table& t, const qsdk::QuantizerContext& c) { return registry().make_quantizer(t, c); };
    factory = std::make_unique<qhost::LayerFactory>(quant, maker, 2, 8);
    auto layer = factory->conv2d("conv", qsdk::LayerRole::body, torch::nn::Conv2dOptions(3, 4, 3).padding(1));
    net->conv = std::dynamic_pointer_cast<qhost::QuantConv2dImpl>(layer);
    net->register_module("conv", layer);
    rebuilder = std::make_unique<qhost::QuantRebuilder>(*factory, net);
  }
  qsdk::QuantizerImpl& act() { return *net->conv->quantizers().activation; }
  torch::Tensor param(const std::string& name) {
    for (const auto& p : net->named_parameters())
      if (p.key() == name) return p.value();
    ADD_FAILURE() << "no parameter " << name;
    return {};
  }
};

int64_t distinct(const torch::Tensor& t) { return std::get<0>(at::_unique(t.flatten())).numel(); }

TEST(QuantRebuild, BitsChangeRebuildsTheQuantizerAndKeepsItsLearnedClip) {
  Fixture f(4);
  ASSERT_EQ(f.rebuilder->size(), 2u);
  // A learned clip and one forward (iteration 1) before the switch.
  {
    torch::NoGradGuard g;
    f.param("conv.quant_activation.clip_val").fill_(0.37);
  }
  torch::manual_seed(3);
  const auto x = torch::rand({2, 3, 8, 8}) * 2.0;
  const auto y4 = f.act().forward(x);
  EXPECT_GT(distinct(y4), 4);
  EXPECT_LE(distinct(y4), 16);
  const auto* old = &f.act();

  EXPECT_EQ(f.rebuilder->set_option("activation.bits", Value(int64_t{2})), Value(int64_t{4}));
  const auto report = f.rebuilder->rebuild();
  EXPECT_EQ(report.rebuilt, 1);  // the weight quantizer's table did not change
  EXPECT_EQ(report.summary(),
            "rebuilt 1 quantizer; carried over: clip_val (1 quantizer), iteration (1 quantizer); re-initialised: "
            "level_num (1 quantizer: its initial value depends on the changed option)");
  EXPECT_NE(&f.act(), old);
  EXPECT_EQ(f.act().num_levels(), 4);
  // The module tree holds the new quantizer under the old name, with the carried values.
  const auto clip = f.param("conv.quant_activation.clip_val");
  EXPECT_FLOAT_EQ(clip.item<float>(), 0.37f);
  EXPECT_EQ(clip.unsafeGetTensorImpl(), f.act().named_parameters()["clip_val"].unsafeGetTensorImpl());
  EXPECT_FLOAT_EQ(f.act().named_buffers()["iteration"].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(f.act().named_buffers()["level_num"].item<float>(), 4.0f);
  // 2 bits on [0, 0.37]: at most 4 distinct values, multiples of 0.37 / 3.
  const auto y2 = f.act().forward(x);
  EXPECT_LE(distinct(y2), 4);
  EXPECT_GE(distinct(y2), 3);
  EXPECT_TRUE(torch::allclose(y2 / (0.37 / 3), torch::round(y2 / (0.37 / 3)), 1e-4, 1e-4));
  // Nothing changes: nothing is rebuilt.
  EXPECT_EQ(f.rebuilder->rebuild().rebuilt, 0);
}

TEST(QuantRebuild, ShapeChangesReinitialiseAndTheOptimizerStepsTheNewTensors) {
  Fixture f(2);
  qhost::OptimizerSettings s;
  s.rules.lr = 0.1;
  s.momentum = 0.9;
  qhost::Optimizer opt(*f.net, s);
  const auto x = torch::rand({2, 3, 8, 8});
  auto step = [&] {
    opt.zero_grad();
    f.net->conv->forward(x).square().mean().backward();
    opt.step();
  };
  step();
  step();
  auto momentum = [&](const std::string& name) {
    for (const auto& [k, t] : opt.state())
      if (k == name + "/momentum_buffer") return t.clone();
    return torch::Tensor();
  };
  const auto act_momentum = momentum("conv.quant_activation.clip_val");
  ASSERT_TRUE(act_momentum.defined());
  const auto weight_clip = f.param("conv.quant_weight.clip_val");
  EXPECT_EQ(weight_clip.numel(), 4);  // one per output channel

  // One weight clip per layer (new shape) and a new activation warm-up length.
  f.rebuilder->set_option("weight.quant_group", Value(int64_t{1}));
  f.rebuilder->set_option("activation.stable", Value(int64_t{5}));
  const auto report = f.rebuilder->rebuild();
  EXPECT_EQ(report.rebuilt, 2);
  EXPECT_NE(report.summary().find("clip_val (1 quantizer: new shape)"), std::string::npos) << report.summary();
  EXPECT_EQ(f.param("conv.quant_weight.clip_val").numel(), 1);
  const auto dropped = opt.rebind(*f.net);
  EXPECT_EQ(dropped, std::vector<std::string>{"conv.quant_weight.clip_val"});
  // The activation clip kept its momentum; every group holds the module's current tensors.
  EXPECT_TRUE(momentum("conv.quant_activation.clip_val").equal(act_momentum));
  for (const auto& g : opt.groups()) EXPECT_EQ(g.param.unsafeGetTensorImpl(), f.param(g.name).unsafeGetTensorImpl());
  const auto before = f.param("conv.quant_weight.clip_val").clone();
  step();
  EXPECT_FALSE(f.param("conv.quant_weight.clip_val").equal(before));  // the new tensor is trained
}

TEST(QuantRebuild, LeavesTheGlobalRandomSequenceAlone) {
  Fixture f(4);
  torch::manual_seed(11);
  const auto expected = torch::rand({5});
  torch::manual_seed(11);
  f.rebuilder->set_option("activation.bits", Value(int64_t{3}));
  EXPECT_EQ(f.rebuilder->rebuild().rebuilt, 1);
  EXPECT_TRUE(torch::rand({5}).equal(expected));
}

TEST(QuantRebuild, UnknownKeysAreRuntimeErrorsNamingThem) {
  Fixture f(4);
  try {
    f.rebuilder->set_option("output.bits", Value(int64_t{2}));
    FAIL() << "no error";
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), qsdk::ErrorCategory::runtime);
    EXPECT_NE(std::string(e.what()).find("quant.output.bits"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.rebuilder->set_option("override[0].activation.bits", Value(int64_t{2})), qsdk::Error);
}

}  // namespace
