#include <torch/torch.h>

#include "resnet_common/flex_resnet.hpp"
#include "resnet_common/init.hpp"
#include "resnet_common/norm_act.hpp"
#include "resnet_common/ops.hpp"

#include <qsdk/error.hpp>

#include <cmath>

namespace qplug_resnet_common {

FlexibleResNetImpl::FlexibleResNetImpl(const FlexibleConfig& cfg, const qsdk::ModelContext& ctx)
    : cfg_(cfg) {
  cfg_.validate();
  if (!ctx.layers)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "model", "ModelContext.layers is null",
                      "the host must pass its layer factory");
  if (ctx.input_shape.size() != 3)
    qsdk::config_error("input_shape", "must be [C, H, W]");
  auto& layers = *ctx.layers;
  const int64_t in_channels = ctx.input_shape[0];
  int64_t resolution = ctx.input_shape[1];
  const StageTable table = flexible_stages(cfg_.depth);
  stem_ = cfg_.stem == Stem::automatic ? (resolution <= 64 ? Stem::cifar : Stem::imagenet) : cfg_.stem;
  const int64_t inplanes = static_cast<int64_t>(64 * cfg_.width_alpha);

  // Stem (docs/models.md#stem-stages-and-head). The stem conv is always made with role `stem` (FP by default).
  if (stem_ == Stem::cifar) {
    conv1_ = torch::nn::AnyModule(register_module(
        "conv1", layers.conv2d("conv1", qsdk::LayerRole::stem, conv_options(in_channels, inplanes, 3, 1, 1))));
  } else if (stem_ == Stem::tresnet || stem_ == Stem::tresnet_maxpool) {
    const int64_t r = stem_ == Stem::tresnet ? 4 : 2;
    const int64_t k = cfg_.stem_kernel;
    conv1_ = torch::nn::AnyModule(register_module(
        "conv1", SpaceToDepthConv(layers, "conv1", qsdk::LayerRole::stem, r,
                                  conv_options(in_channels * r * r, inplanes, k, 1, k / 2))));
    resolution /= r;
    maxpool_ = stem_ == Stem::tresnet_maxpool;
  } else {
    conv1_ = torch::nn::AnyModule(register_module(
        "conv1", layers.conv2d("conv1", qsdk::LayerRole::stem, conv_options(in_channels, inplanes, 7, 2, 3))));
    resolution = (resolution + 1) / 2;
    maxpool_ = true;
  }
  if (maxpool_) resolution = (resolution + 1) / 2;

  if (cfg_.fixup) {
    stem_act_ = make_act(cfg_.activation);
    register_module("relu", stem_act_.ptr());
    if (cfg_.fixup_bias) fixup_bias1_ = register_parameter("fixup_bias1", torch::zeros({1}));
  } else if (!cfg_.pre_bn || (cfg_.patch_pre_bn_stem && cfg_.fix_pooling)) {
    torch::nn::Sequential bn1;
    bn1->push_back(make_norm(cfg_.norm, inplanes, cfg_.norm_groups));
    if (!cfg_.group_net) bn1->push_back(make_act(cfg_.activation));
    bn1_ = register_module("bn1", bn1);
  }

  // Stages: width inplanes*2^i, stride 1 for the first stage and 2 afterwards.
  std::vector<InitTargets> targets;
  int64_t channels = inplanes;
  for (size_t i = 0; i < table.blocks.size(); ++i) {
    const int64_t planes = inplanes << i;
    const int64_t out = table.bottleneck ? 4 * planes : planes;
    if (table.blocks[i] == 0) {
      channels = out;
      continue;
    }
    const std::string name = "layer" + std::to_string(i + 1);
    torch::nn::Sequential stage;
    for (int64_t j = 0; j < table.blocks[i]; ++j) {
      BlockSpec spec;
      spec.path = name + "." + std::to_string(j);
      spec.inplanes = channels;
      spec.planes = planes;
      spec.stride = (i > 0 && j == 0) ? 2 : 1;
      spec.resolution = resolution;
      if (table.bottleneck) {
        FlexBottleneck block(cfg_, spec, layers);
        targets.push_back(block->init_targets());
        stage->push_back(block);
      } else {
        FlexBasicBlock block(cfg_, spec, layers);
        targets.push_back(block->init_targets());
        stage->push_back(block);
      }
      channels = out;
      resolution = (resolution + spec.stride - 1) / spec.stride;
    }
    stages_.push_back(register_module(name, stage));
  }

  // Head: [bn2] -> global average pool -> [+ fixup_bias2] -> fc (role head).
  if (cfg_.pre_bn && !cfg_.fixup) {
    torch::nn::Sequential bn2;
    bn2->push_back(make_norm(cfg_.norm, channels, cfg_.norm_groups));
    if (cfg_.patch_pre_bn_stem) bn2->push_back(make_act(cfg_.activation));
    bn2_ = register_module("bn2", bn2);
  }
  if (cfg_.fixup && cfg_.fixup_bias) fixup_bias2_ = register_parameter("fixup_bias2", torch::zeros({1}));
  fc_ = register_module("fc", layers.linear("fc", qsdk::LayerRole::head,
                                            torch::nn::LinearOptions(channels, ctx.num_classes)));
  initialise(targets, table.bottleneck, table.blocks.size());
}

void FlexibleResNetImpl::initialise(const std::vector<InitTargets>& targets, bool bottleneck, size_t stages) {
  init_convs(*this);
  torch::NoGradGuard no_grad;
  if (cfg_.zir)
    for (const auto& t : targets)
      for (const auto& norm : t.zir_norms) zero_norm_weight(*norm);
  if (cfg_.fixup) {
    // docs/models.md#fixup [DEVIATION]: the reference scales by the number of stages, not
    // the number of residual branches as in the Fixup paper.
    const double m = static_cast<double>(stages);
    const double scale = bottleneck ? std::pow(m, -0.25) : std::pow(m, -0.5);
    for (const auto& t : targets) {
      for (const auto& c : t.fixup_first) kaiming_fan_out_(c->weight(), scale);
      for (const auto& c : t.fixup_middle) kaiming_fan_out_(c->weight(), scale);
      for (const auto& c : t.fixup_last) c->weight().zero_();
    }
    fc_->weight().zero_();
    for (auto& p : fc_->named_parameters(false))
      if (p.key() == "bias") p.value().zero_();
  }
}

torch::Tensor FlexibleResNetImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = conv1_.forward(input);
  if (cfg_.fixup) x = stem_act_.forward(fixup_bias1_.defined() ? x + fixup_bias1_ : x);
  auto pool = [](const torch::Tensor& t) { return torch::max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); };
  if (cfg_.fix_pooling) {
    if (bn1_) x = bn1_->forward(x);
    if (maxpool_) x = pool(x);
  } else {
    if (maxpool_) x = pool(x);
    if (bn1_) x = bn1_->forward(x);
  }
  for (auto& stage : stages_) x = stage->forward(x);
  if (bn2_) x = bn2_->forward(x);
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  if (fixup_bias2_.defined()) x = x + fixup_bias2_;
  return fc_->forward(x);
}

}  // namespace qplug_resnet_common
