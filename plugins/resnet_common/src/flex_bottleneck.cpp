#include <torch/torch.h>

#include "resnet_common/flex_blocks.hpp"
#include "resnet_common/norm_act.hpp"
#include "resnet_common/prone.hpp"

namespace qplug_resnet_common {
namespace {

torch::Tensor add_bias(const torch::Tensor& x, const torch::Tensor& bias) {
  return bias.defined() ? x + bias : x;
}

}  // namespace

FlexBottleneckImpl::FlexBottleneckImpl(const FlexibleConfig& cfg, const BlockSpec& spec, qsdk::LayerFactory& layers)
    : cfg_(cfg), order_(cfg.order) {
  const int64_t in = spec.inplanes, planes = spec.planes, stride = spec.stride, out = 4 * planes;
  const int64_t extra = extra_padding(cfg, stride, spec.resolution);
  // The reference special-cases only `bacs`; `bcas` also normalises the block
  // input first, so it gets the input-width BN too (the reference would crash).
  const bool pre = order_ == Order::bacs || order_ == Order::bcas;
  const bool fix_post = cfg.fix && (order_ == Order::cbas || order_ == Order::cbsa);

  skip_ = make_shortcut(cfg, order_, true, in, out, stride, extra, spec.path, layers, *this);

  conv1_.emplace(*this, "conv1");
  conv2_.emplace(*this, "conv2");
  conv3_.emplace(*this, "conv3");
  auto c1 = layers.conv2d(join_path(spec.path, "conv1.0"), qsdk::LayerRole::body, conv_options(in, planes, 1, 1, 0));
  conv1_->push_back(torch::nn::AnyModule(c1));
  targets_.fixup_first.push_back(c1);
  const bool prone2 = cfg.prone && !cfg.f3x3 && !(cfg.no_prone_downsample && stride != 1);
  if (prone2) {
    auto unit_norm = cfg.bn_before_restore ? make_norm(cfg.norm, 4 * planes, cfg.norm_groups) : torch::nn::AnyModule();
    conv2_->push_back(torch::nn::AnyModule(
        Prone(layers, join_path(spec.path, "conv2.0"), qsdk::LayerRole::body, planes, planes, stride, unit_norm)));
  } else {
    auto c2 = layers.conv2d(join_path(spec.path, "conv2.0"), qsdk::LayerRole::body,
                            conv_options(planes, planes, 3, stride, 1 + extra));
    conv2_->push_back(torch::nn::AnyModule(c2));
    targets_.fixup_middle.push_back(c2);
  }
  auto c3 = layers.conv2d(join_path(spec.path, "conv3.0"), qsdk::LayerRole::body, conv_options(planes, out, 1, 1, 0));
  conv3_->push_back(torch::nn::AnyModule(c3));
  targets_.fixup_last.push_back(c3);

  bn1_.emplace(*this, "bn1");
  bn2_.emplace(*this, "bn2");
  bn3_.emplace(*this, "bn3");
  relu1_.emplace(*this, "relu1");
  relu2_.emplace(*this, "relu2");
  relu3_.emplace(*this, "relu3");
  bn1_->push_back(block_norm(cfg, pre ? in : planes));
  bn2_->push_back(prone2 && cfg.bn_before_restore ? make_identity() : block_norm(cfg, planes));
  bn3_->push_back(block_norm(cfg, pre ? planes : out));
  relu1_->push_back(make_act(cfg.activation));
  relu2_->push_back(make_act(cfg.activation));
  relu3_->push_back(fix_post ? make_identity() : make_act(cfg.activation));
  if (cfg.fix && pre && !cfg.fixup) {
    fix_bn_ = block_norm(cfg, out);
    register_module("fix_bn", fix_bn_.ptr());
    targets_.zir_norms.push_back(fix_bn_.ptr());
  } else {
    targets_.zir_norms.push_back(bn3_->ptr(0));
  }
  if (fix_post) {
    fix_relu_ = make_act(cfg.activation);
    register_module("fix_relu", fix_relu_.ptr());
  }
  if (cfg.fixup) {
    fixup_scale_ = register_parameter("fixup_scale", torch::ones({1}));
    if (cfg.fixup_bias) {
      b1a_ = register_parameter("fixup_bias1a", torch::zeros({1}));
      b1b_ = register_parameter("fixup_bias1b", torch::zeros({1}));
      b2a_ = register_parameter("fixup_bias2a", torch::zeros({1}));
      b2b_ = register_parameter("fixup_bias2b", torch::zeros({1}));
      b3a_ = register_parameter("fixup_bias3a", torch::zeros({1}));
      b3b_ = register_parameter("fixup_bias3b", torch::zeros({1}));
    }
  }
}

torch::Tensor FlexBottleneckImpl::unit(const torch::Tensor& x, CallableList& conv, CallableList& bn,
                                       CallableList& act) {
  switch (order_) {
    case Order::cbas: return act(0, bn(0, conv(0, x)));
    case Order::cbsa: return act(0, bn(0, conv(0, x)));
    case Order::cabs: return bn(0, act(0, conv(0, x)));
    case Order::bacs: return conv(0, act(0, bn(0, x)));
    case Order::bcas: return act(0, conv(0, bn(0, x)));
  }
  return x;
}

torch::Tensor FlexBottleneckImpl::forward(const torch::Tensor& x) {
  const torch::Tensor xb = add_bias(x, b1a_);
  const torch::Tensor residual = skip_.seq ? skip_(xb) : x;
  torch::Tensor out;
  if (cfg_.fixup) {
    // Fixup's Bottleneck (the paper's placement of the six scalar biases).
    out = (*relu1_)(0, add_bias((*conv1_)(0, xb), b1b_));
    out = (*relu2_)(0, add_bias((*conv2_)(0, add_bias(out, b2a_)), b2b_));
    out = (*relu3_)(0, (*conv3_)(0, add_bias(out, b3a_)));
    out = add_bias(out * fixup_scale_, b3b_);
  } else {
    out = unit(xb, *conv1_, *bn1_, *relu1_);
    out = unit(out, *conv2_, *bn2_, *relu2_);
    out = unit(out, *conv3_, *bn3_, *relu3_);
    if (!fix_bn_.is_empty()) out = fix_bn_.forward(out);
  }
  out = out + residual;
  return fix_relu_.is_empty() ? out : fix_relu_.forward(out);
}

}  // namespace qplug_resnet_common
