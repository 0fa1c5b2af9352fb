// Parameter names and shapes of the ResNets against docs/models.md#layer-sequences / docs/models.md#parameter-names.
#include <torch/torch.h>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace {

using qsdk::Table;
using Shape = std::vector<int64_t>;

struct Built {
  std::unique_ptr<qhost::LayerFactory> layers;
  std::shared_ptr<qsdk::ModelImpl> model;
};

Built build(const std::string& name, const Table& options, int64_t classes = 1000,
            std::vector<int64_t> input = {3, 224, 224}, const Table& quant = {}) {
  static qtest::QuantizerLog log;
  Built b;
  b.layers = std::make_unique<qhost::LayerFactory>(quant, log.maker(), 2, input[1]);
  b.model = qtest::make_model(name, options, *b.layers, classes, input);
  return b;
}

TEST(ResNetNames, TorchResNet18HasTorchvisionNamesAndSize) {
  auto b = build("torch_resnet", Table{{"depth", 18}});
  auto s = qtest::shapes(*b.model);
  EXPECT_EQ(qtest::parameter_count(*b.model), 11689512);  // torchvision resnet18
  EXPECT_EQ(s.size(), 122u);                               // torchvision state_dict entries
  EXPECT_EQ(s.at("conv1.weight"), (Shape{64, 3, 7, 7}));
  EXPECT_EQ(s.at("bn1.running_var"), (Shape{64}));
  EXPECT_EQ(s.at("bn1.num_batches_tracked"), (Shape{}));
  EXPECT_EQ(s.at("layer1.1.conv2.weight"), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(s.at("layer2.0.conv1.weight"), (Shape{128, 64, 3, 3}));
  EXPECT_EQ(s.at("layer2.0.downsample.0.weight"), (Shape{128, 64, 1, 1}));
  EXPECT_EQ(s.at("layer2.0.downsample.1.weight"), (Shape{128}));
  EXPECT_EQ(s.at("layer4.1.bn2.bias"), (Shape{512}));
  EXPECT_EQ(s.at("fc.weight"), (Shape{1000, 512}));
  EXPECT_EQ(s.at("fc.bias"), (Shape{1000}));
  EXPECT_FALSE(s.count("layer1.0.downsample.0.weight"));
}

TEST(ResNetNames, TorchResNet50And101HaveTorchvisionSizes) {
  auto b50 = build("torch_resnet", Table{{"depth", 50}});
  EXPECT_EQ(qtest::parameter_count(*b50.model), 25557032);
  auto s = qtest::shapes(*b50.model);
  EXPECT_EQ(s.at("layer1.0.downsample.0.weight"), (Shape{256, 64, 1, 1}));
  EXPECT_EQ(s.at("layer2.0.conv2.weight"), (Shape{128, 128, 3, 3}));  // V1.5: stride on the 3x3
  EXPECT_EQ(s.at("layer4.2.conv3.weight"), (Shape{2048, 512, 1, 1}));
  auto b101 = build("torch_resnet", Table{{"depth", 101}});
  EXPECT_EQ(qtest::parameter_count(*b101.model), 44549160);
}

TEST(ResNetNames, TorchResNet18LayerRolesMatchSpec) {
  Table quant{{"weight", Table{{"type", "testq"}, {"bits", 2}}}, {"activation", Table{{"type", "testq"}, {"bits", 2}}}};
  auto b = build("torch_resnet", Table{{"depth", 18}}, 1000, {3, 224, 224}, quant);
  std::map<std::string, int> roles;
  int quantized = 0;
  for (const auto& r : b.layers->records()) {
    roles[qsdk::to_string(r.role)]++;
    quantized += r.weight.active() ? 1 : 0;
  }
  EXPECT_EQ(roles["stem"], 1);
  EXPECT_EQ(roles["body"], 16);
  EXPECT_EQ(roles["shortcut"], 3);
  EXPECT_EQ(roles["head"], 1);
  EXPECT_EQ(quantized, 19);  // docs/models.md#a-torchvision-resnet-18-on-imagenet
  // Creation order = the reference's layer index order: conv1, conv2, downsample.
  const auto& r = b.layers->records();
  EXPECT_EQ(r[0].path, "conv1");
  EXPECT_EQ(r[5].path, "layer2.0.conv1");
  EXPECT_EQ(r[6].path, "layer2.0.conv2");
  EXPECT_EQ(r[7].path, "layer2.0.downsample.0");
  EXPECT_EQ(r.back().path, "fc");
  // Quantizer state lands under the conv's path.
  auto s = qtest::shapes(*b.model);
  EXPECT_TRUE(s.count("layer1.0.conv1.quant_weight.clip_val"));
  EXPECT_TRUE(s.count("layer2.0.downsample.0.quant_activation.clip_val"));
  EXPECT_FALSE(s.count("conv1.quant_weight.clip_val"));
}

// docs/models.md#parameter-names: torchvision name -> flexible (cbsa) name.
std::string tv_to_flexible(const std::string& n) {
  static const std::vector<std::pair<std::regex, std::string>> rules{
      {std::regex(R"(^bn1\.(.*)$)"), "bn1.0.$1"},
      {std::regex(R"(^(layer\d+\.\d+)\.(conv\d)\.weight$)"), "$1.$2.0.weight"},
      {std::regex(R"(^(layer\d+\.\d+)\.(bn\d)\.(.*)$)"), "$1.$2.0.$3"},
      {std::regex(R"(^(layer\d+\.0)\.downsample\.0\.(.*)$)"), "$1.skip.1.$2"},
      {std::regex(R"(^(layer\d+\.0)\.downsample\.1\.(.*)$)"), "$1.skip.2.$2"},
  };
  for (const auto& [re, repl] : rules)
    if (std::regex_match(n, re)) return std::regex_replace(n, re, repl);
  return n;
}

TEST(ResNetNames, FlexibleDefaultIsTorchvisionGraphWithSpecNames) {
  // resnet's defaults = origin,cbsa,fix_pooling,singleconv,fix (docs/models.md#b-flexible-resnet-18-equivalent-to-a).
  auto tv = build("torch_resnet", Table{{"depth", 18}}, 10, {3, 64, 64});
  auto flex = build("resnet", Table{{"depth", 18}, {"stem", "imagenet"}}, 10, {3, 64, 64});
  auto ts = qtest::shapes(*tv.model);
  auto fs = qtest::shapes(*flex.model);
  EXPECT_EQ(ts.size(), fs.size());
  EXPECT_EQ(fs.at("conv1.weight"), (Shape{64, 3, 7, 7}));
  EXPECT_EQ(fs.at("bn1.0.weight"), (Shape{64}));
  EXPECT_EQ(fs.at("layer1.0.conv1.0.weight"), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(fs.at("layer1.0.bn2.0.running_mean"), (Shape{64}));
  EXPECT_EQ(fs.at("layer3.0.skip.1.weight"), (Shape{256, 128, 1, 1}));
  EXPECT_EQ(fs.at("layer3.0.skip.2.weight"), (Shape{256}));
  EXPECT_EQ(fs.at("fc.weight"), (Shape{10, 512}));
  // Copy the torchvision weights through the docs/models.md#parameter-names mapping: same logits.
  {
    torch::NoGradGuard ng;
    auto fp = flex.model->named_parameters();
    auto fb = flex.model->named_buffers();
    for (const auto& p : tv.model->named_parameters()) {
      const auto target = tv_to_flexible(p.key());
      ASSERT_TRUE(fp.contains(target)) << p.key() << " -> " << target;
      ASSERT_EQ(fp[target].sizes(), p.value().sizes()) << target;
      fp[target].copy_(p.value());
    }
    for (auto& b : tv.model->named_buffers()) {
      const auto target = tv_to_flexible(b.key());
      ASSERT_TRUE(fb.contains(target)) << b.key() << " -> " << target;
      // Non-trivial statistics so eval mode is really compared.
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.1);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
      fb[target].copy_(b.value());
    }
  }
  tv.model->eval();
  flex.model->eval();
  auto x = torch::randn({2, 3, 64, 64});
  auto a = tv.model->forward(x), c = flex.model->forward(x);
  EXPECT_EQ(a.sizes().vec(), (Shape{2, 10}));
  EXPECT_TRUE(torch::allclose(a, c, 1e-4, 1e-5)) << (a - c).abs().max();
}

TEST(ResNetNames, FlexiblePreActivationResNet18) {
  // docs/models.md#c-pre-activation-resnet-18: origin,preBN,bacs.
  auto b = build("resnet", Table{{"depth", 18}, {"order", "bacs"}, {"pre_bn", true}, {"fix_pooling", false},
                                 {"singleconv", false}, {"fix", false}, {"stem", "imagenet"}});
  auto s = qtest::shapes(*b.model);
  EXPECT_FALSE(s.count("bn1.0.weight"));  // no stem BN
  EXPECT_EQ(s.at("bn2.0.weight"), (Shape{512}));
  EXPECT_EQ(s.at("layer1.0.bn1.0.weight"), (Shape{64}));
  EXPECT_EQ(s.at("layer2.0.bn1.0.weight"), (Shape{64}));   // BN of the block input
  EXPECT_EQ(s.at("layer2.0.bn2.0.weight"), (Shape{128}));
  EXPECT_EQ(s.at("layer2.0.skip.1.weight"), (Shape{64}));  // skip = [AvgPool, BN64', act, conv]
  EXPECT_EQ(s.at("layer2.0.skip.3.weight"), (Shape{128, 64, 1, 1}));
  EXPECT_FALSE(s.count("layer2.0.skip.4.weight"));
  EXPECT_FALSE(s.count("layer1.0.fix_bn.weight"));
  auto y = b.model->forward(torch::randn({1, 3, 64, 64}));
  EXPECT_EQ(y.sizes().vec(), (Shape{1, 1000}));
}

TEST(ResNetNames, CifarResNet20) {
  // docs/models.md#f-cifar-resnet-20: cifar100, width_alpha 0.25, origin,cbsa,fix_pooling,singleconv,fix.
  auto b = build("resnet", Table{{"depth", 20}, {"width_alpha", 0.25}}, 100, {3, 32, 32});
  auto s = qtest::shapes(*b.model);
  EXPECT_EQ(qtest::parameter_count(*b.model), 278324);
  EXPECT_EQ(s.at("conv1.weight"), (Shape{16, 3, 3, 3}));
  EXPECT_EQ(s.at("bn1.0.weight"), (Shape{16}));
  EXPECT_EQ(s.at("layer1.2.conv2.0.weight"), (Shape{16, 16, 3, 3}));
  EXPECT_EQ(s.at("layer2.0.skip.1.weight"), (Shape{32, 16, 1, 1}));
  EXPECT_EQ(s.at("layer3.2.bn2.0.bias"), (Shape{64}));
  EXPECT_FALSE(s.count("layer4.0.conv1.0.weight"));
  EXPECT_EQ(s.at("fc.weight"), (Shape{100, 64}));
  EXPECT_EQ(b.layers->records().size(), 22u);  // 1 stem + 18 body + 2 shortcut + fc
  auto y = b.model->forward(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(y.sizes().vec(), (Shape{2, 100}));
}

TEST(ResNetNames, LosslessDownsampleNamesAndIndexOrder) {
  auto b = build("resnet", Table{{"depth", 20}, {"width_alpha", 0.25}, {"lossless_downsample", true},
                                 {"shrink_order", "cb"}},
                 100, {3, 32, 32});
  auto s = qtest::shapes(*b.model);
  EXPECT_EQ(s.at("layer2.0.shrink.0.conv.weight"), (Shape{32, 64, 1, 1}));  // s2d 16*4 -> 32
  EXPECT_EQ(s.at("layer2.0.shrink.1.weight"), (Shape{32}));
  EXPECT_FALSE(s.count("layer2.0.skip.1.weight"));  // identity shortcut after the shrink
  EXPECT_EQ(s.at("layer2.0.conv1.0.weight"), (Shape{32, 32, 3, 3}));
  const auto& r = b.layers->records();
  auto at = [&](const std::string& path) {
    for (const auto& rec : r)
      if (rec.path == path) return rec;
    return qhost::LayerRecord{};
  };
  EXPECT_EQ(at("layer2.0.shrink.0.conv").role, qsdk::LayerRole::shortcut);
  EXPECT_LT(at("layer2.0.shrink.0.conv").index, at("layer2.0.conv1.0").index);
  EXPECT_LT(at("layer2.0.conv1.0").index, at("layer2.0.conv2.0").index);
}

TEST(ResNetNames, GroupNetBranchesAndScales) {
  auto b = build("groupnet_resnet", Table{{"depth", 18}, {"width_alpha", 0.25}}, 10, {3, 32, 32});
  auto s = qtest::shapes(*b.model);
  EXPECT_EQ(s.at("layer1.0.conv1.4.weight"), (Shape{16, 16, 3, 3}));
  EXPECT_FALSE(s.count("layer1.0.conv1.5.weight"));
  EXPECT_EQ(s.at("layer1.0.scales.0"), (Shape{1}));
  EXPECT_EQ(s.at("layer1.0.scales.4"), (Shape{1}));
  EXPECT_NEAR(b.model->named_parameters()["layer1.0.scales.3"].item<double>(), 0.2, 1e-7);
  EXPECT_EQ(s.at("bn1.0.weight"), (Shape{16}));
  EXPECT_FALSE(s.count("bn1.1.weight"));
}

TEST(ResNetNames, ProneUnitsAndFixupScalars) {
  auto p = build("prone_resnet", Table{{"depth", 18}}, 10, {3, 32, 32});
  auto s = qtest::shapes(*p.model);
  EXPECT_EQ(s.at("layer1.0.conv1.0.conv.weight"), (Shape{256, 256, 1, 1}));  // 64*4 -> 4*64
  EXPECT_EQ(s.at("layer2.0.conv1.0.weight"), (Shape{128, 64, 3, 3}));        // npd: strided conv stays 3x3
  EXPECT_EQ(s.at("layer2.0.conv2.0.conv.weight"), (Shape{512, 512, 1, 1}));
  auto f = build("fixup_resnet", Table{{"depth", 18}}, 10, {3, 32, 32});
  auto fs = qtest::shapes(*f.model);
  EXPECT_EQ(fs.at("layer1.0.fixup_scale"), (Shape{1}));
  EXPECT_EQ(fs.at("layer1.0.fixup_bias2b"), (Shape{1}));
  EXPECT_EQ(fs.at("fixup_bias2"), (Shape{1}));
  EXPECT_FALSE(fs.count("bn1.0.weight"));
  EXPECT_FALSE(fs.count("layer1.0.bn1.0.weight"));
}

}  // namespace
