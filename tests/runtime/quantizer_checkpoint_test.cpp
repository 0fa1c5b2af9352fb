// Every quantizer's parameters and state survive an HDF5 checkpoint round trip,
// and an FP checkpoint initialises the quantized layer (quantizer state keeps its init).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "checkpoint/checkpoint.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

namespace {

namespace fs = std::filesystem;

class QuantizerCheckpoint : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    registry_ = new qhost::Registry();
    const char* env = std::getenv("QTOOL_PLUGIN_PATH");
    loader_ = new qhost::PluginLoader(*registry_, {env ? env : QTOOL_TEST_PLUGIN_DIR});
    for (const char* name : {"lsq", "dorefa", "pact", "lqnet", "xnor", "nonuniform"}) loader_->load(name);
  }
  static qhost::Registry* registry_;
  static qhost::PluginLoader* loader_;
};
qhost::Registry* QuantizerCheckpoint::registry_ = nullptr;
qhost::PluginLoader* QuantizerCheckpoint::loader_ = nullptr;

/// A module holding one activation quantizer, as a quantized layer does.
struct Holder : torch::nn::Module {
  std::shared_ptr<qsdk::QuantizerImpl> quant_activation;
};

std::shared_ptr<Holder> make_holder(qhost::Registry& registry, const std::string& type) {
  qsdk::QuantizerContext ctx;
  ctx.target = qsdk::QuantTarget::activation;
  ctx.shape = {1, 4, 1, 1};
  ctx.batch_size = 2;
  ctx.input_size = 6;
  auto holder = std::make_shared<Holder>();
  qsdk::Table options{{"type", type}};
  if (type == "xnor") options["bits"] = 1;
  holder->quant_activation = holder->register_module("quant_activation", registry.make_quantizer(options, ctx));
  return holder;
}

TEST_P(QuantizerCheckpoint, StateRoundTripsThroughHdf5) {
  auto a = make_holder(*registry_, GetParam());
  // Train forwards move the state (counters, LQ-Net basis); perturb learnables too.
  a->train();
  auto x = torch::rand({2, 4, 6, 6}) * 2 - 0.5;
  for (int i = 0; i < 3; ++i) a->quant_activation->forward(x);
  {
    torch::NoGradGuard ng;
    for (auto& p : a->parameters()) p.mul_(1.37);
  }
  const auto state = qhost::module_state(*a);
  ASSERT_FALSE(state.empty()) << GetParam() << " has no state to save";
  const auto dir = fs::temp_directory_path() / ("qtool_qckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto path = (dir / (GetParam() + ".h5")).string();
  qhost::CheckpointData data;
  data.model = state;
  qhost::write_checkpoint(path, data);

  auto b = make_holder(*registry_, GetParam());
  qhost::load_module_state(*b, qhost::read_checkpoint(path).model, path);
  const auto restored = qhost::module_state(*b);
  ASSERT_EQ(restored.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(restored[i].first, state[i].first);
    EXPECT_EQ(restored[i].second.scalar_type(), state[i].second.scalar_type()) << state[i].first;
    EXPECT_TRUE(restored[i].second.equal(state[i].second)) << GetParam() << " " << state[i].first;
  }
  // Same state, same output.
  a->eval();
  b->eval();
  EXPECT_TRUE(a->quant_activation->forward(x).equal(b->quant_activation->forward(x))) << GetParam();
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllQuantizers, QuantizerCheckpoint,
                         ::testing::Values("lsq", "dorefa", "pact", "lqnet", "xnor", "nonuniform"));

}  // namespace
