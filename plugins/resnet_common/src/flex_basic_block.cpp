#include <torch/torch.h>

#include "resnet_common/flex_blocks.hpp"
#include "resnet_common/norm_act.hpp"
#include "resnet_common/prone.hpp"

#include <qsdk/error.hpp>

namespace qplug_resnet_common {

torch::Tensor Shortcut::operator()(const torch::Tensor& x) {
  if (!seq) return x;
  torch::Tensor y = seq->forward(x);
  return copies > 1 ? y.repeat({1, copies, 1, 1}) : y;
}

torch::nn::AnyModule block_norm(const FlexibleConfig& cfg, int64_t channels) {
  if (cfg.fixup) return make_identity();
  return make_norm(cfg.norm, channels, cfg.norm_groups);
}

// The reference computes an extra padding from (input_size // feature_stride)
// modulo 2s, but its feature_stride bookkeeping is not recoverable (docs/models.md#flexible-basicblock
// item 4) and Prone ignores it; only the explicit `force_padding` rule is kept.
int64_t extra_padding(const FlexibleConfig& cfg, int64_t stride, int64_t resolution) {
  return (cfg.force_padding && stride != 1 && resolution == 14) ? 1 : 0;
}

Shortcut make_shortcut(const FlexibleConfig& cfg, Order order, bool bottleneck, int64_t inplanes,
                       int64_t outplanes, int64_t stride, int64_t extra, const std::string& path,
                       qsdk::LayerFactory& layers, torch::nn::Module& owner) {
  Shortcut out;
  if (stride == 1 && inplanes == outplanes && !cfg.identify_norm) return out;
  out.seq = owner.register_module("skip", torch::nn::Sequential());
  auto& seq = *out.seq;
  if (stride != 1 && !cfg.singleconv)
    seq.push_back(torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(stride).stride(stride)));
  else
    seq.push_back(torch::nn::Identity());
  if (inplanes != outplanes) {
    if (cfg.dchr) {
      if (outplanes % inplanes != 0)
        qsdk::config_error("dchr", "channel duplication needs the output width (" + std::to_string(outplanes) +
                                       ") to be a multiple of the input width (" + std::to_string(inplanes) + ")");
      out.copies = outplanes / inplanes;
      return out;
    }
    auto conv = [&] {
      const std::string conv_path = join_path(path, "skip." + std::to_string(seq.size()));
      const int64_t s = cfg.singleconv ? stride : 1;
      const int64_t p = cfg.singleconv ? extra : 0;
      return layers.conv2d(conv_path, qsdk::LayerRole::shortcut, conv_options(inplanes, outplanes, 1, s, p));
    };
    if (order == Order::bacs) {
      seq.push_back(block_norm(cfg, inplanes));
      seq.push_back(make_act(cfg.activation));
      seq.push_back(conv());
      if (cfg.fix) seq.push_back(block_norm(cfg, outplanes));
    } else if (order == Order::bcas && !bottleneck) {
      seq.push_back(block_norm(cfg, inplanes));
      seq.push_back(conv());
      seq.push_back(make_act(cfg.activation));
      if (cfg.fix) seq.push_back(block_norm(cfg, outplanes));
    } else {
      seq.push_back(conv());
      seq.push_back(block_norm(cfg, outplanes));
      if (!cfg.fix) seq.push_back(make_act(cfg.activation));
    }
  } else if (cfg.identify_norm) {
    seq.push_back(block_norm(cfg, inplanes));
  }
  return out;
}

namespace {

torch::Tensor add_bias(const torch::Tensor& x, const torch::Tensor& bias) {
  return bias.defined() ? x + bias : x;
}

bool post_act_order(Order o) { return o == Order::cbas || o == Order::cbsa; }
bool pre_act_order(Order o) { return o == Order::bacs || o == Order::bcas; }

}  // namespace

FlexBasicBlockImpl::FlexBasicBlockImpl(const FlexibleConfig& cfg, const BlockSpec& spec, qsdk::LayerFactory& layers)
    : cfg_(cfg), order_(cfg.order) {
  int64_t in = spec.inplanes;
  int64_t stride = spec.stride;
  const int64_t planes = spec.planes;
  int64_t extra = extra_padding(cfg, stride, spec.resolution);

  // Lossless down-sampling: the strided part becomes space-to-depth + conv, and
  // the rest of the block runs at stride 1 on `planes` channels. Its BN is built
  // for `planes` (the reference builds BN(inplanes) with preBN, a mismatch).
  if (cfg.lossless_downsample && stride != 1) {
    shrink_ = register_module("shrink", torch::nn::Sequential());
    for (char letter : cfg.shrink_order) {
      const std::string item = join_path(spec.path, "shrink." + std::to_string(shrink_->size()));
      if (letter == 'c') {
        const int64_t k = cfg.ldn3x3 ? 3 : 1;
        shrink_->push_back(SpaceToDepthConv(layers, item, qsdk::LayerRole::shortcut, stride,
                                            conv_options(in * stride * stride, planes, k, 1, k / 2)));
      } else if (letter == 'b') {
        shrink_->push_back(block_norm(cfg, planes));
      } else {
        shrink_->push_back(make_act(cfg.activation));
      }
    }
    if (cfg.ldn3x3) {
      only_shrink_ = true;
      return;
    }
    in = planes;
    stride = 1;
    extra = 0;
  }
  // f0x0 / f1x1 are sub-options of the lossless shrink (they only fit a block
  // that no longer changes shape); s1x1 also applies to every Prone block.
  const bool shrunk = static_cast<bool>(shrink_);
  const bool f0x0 = cfg.f0x0 && shrunk;
  const bool f1x1 = cfg.f1x1 && shrunk;
  const bool s1x1 = cfg.s1x1 && (shrunk || cfg.prone);
  f0x0_ = f0x0;

  skip_ = make_shortcut(cfg, order_, false, in, planes, stride, extra, spec.path, layers, *this);

  const bool prone1 = cfg.prone && !cfg.f3x3 && !(cfg.no_prone_downsample && stride != 1);
  const bool prone2 = cfg.prone && !s1x1 && !cfg.s3x3;
  conv1_.emplace(*this, "conv1");
  conv2_.emplace(*this, "conv2");
  bn1_.emplace(*this, "bn1");
  bn2_.emplace(*this, "bn2");
  relu1_.emplace(*this, "relu1");
  relu2_.emplace(*this, "relu2");
  const std::string p1 = join_path(spec.path, "conv1"), p2 = join_path(spec.path, "conv2");
  for (int64_t k = 0; k < cfg.base; ++k) {
    if (f0x0) break;
    const std::string path = p1 + "." + std::to_string(k);
    if (prone1) {
      auto unit_norm = cfg.bn_before_restore ? make_norm(cfg.norm, 4 * planes, cfg.norm_groups) : torch::nn::AnyModule();
      conv1_->push_back(torch::nn::AnyModule(Prone(layers, path, qsdk::LayerRole::body, in, planes, stride, unit_norm)));
    } else {
      const int64_t kernel = f1x1 ? 1 : 3;
      auto conv = layers.conv2d(path, qsdk::LayerRole::body,
                                conv_options(in, planes, kernel, stride, kernel == 3 ? 1 + extra : 0));
      targets_.fixup_first.push_back(conv);
      conv1_->push_back(torch::nn::AnyModule(conv));
    }
  }
  for (int64_t k = 0; k < cfg.base; ++k) {
    const std::string path = p2 + "." + std::to_string(k);
    if (prone2) {
      auto unit_norm = cfg.bn_before_restore ? make_norm(cfg.norm, 4 * planes, cfg.norm_groups) : torch::nn::AnyModule();
      conv2_->push_back(torch::nn::AnyModule(Prone(layers, path, qsdk::LayerRole::body, planes, planes, 1, unit_norm)));
    } else {
      const int64_t kernel = s1x1 ? 1 : 3;
      auto conv = layers.conv2d(path, qsdk::LayerRole::body, conv_options(planes, planes, kernel, 1, kernel / 2));
      targets_.fixup_last.push_back(conv);
      conv2_->push_back(torch::nn::AnyModule(conv));
    }
  }
  const bool fix_post = cfg.fix && post_act_order(order_);
  const bool fix_pre = cfg.fix && pre_act_order(order_);
  for (int64_t k = 0; k < cfg.base; ++k) {
    if (!f0x0) {
      const bool drop = prone1 && cfg.bn_before_restore;
      bn1_->push_back(drop ? make_identity() : block_norm(cfg, pre_act_order(order_) ? in : planes));
      relu1_->push_back(make_act(cfg.activation));
    }
    const bool drop2 = prone2 && cfg.bn_before_restore;
    bn2_->push_back(drop2 ? make_identity() : block_norm(cfg, planes));
    relu2_->push_back(fix_post ? make_identity() : make_act(cfg.activation));
    if (!fix_pre) targets_.zir_norms.push_back(bn2_->ptr(static_cast<size_t>(k)));
  }
  if (fix_pre && !cfg.fixup) {
    fix_bn_ = block_norm(cfg, planes);
    register_module("fix_bn", fix_bn_.ptr());
    targets_.zir_norms.push_back(fix_bn_.ptr());
  }
  if (fix_post) {
    fix_relu_ = make_act(cfg.activation);
    register_module("fix_relu", fix_relu_.ptr());
  }
  if (cfg.base > 1) {
    scales_ = register_module("scales", torch::nn::ParameterList());
    for (int64_t k = 0; k < cfg.base; ++k) scales_->append(torch::full({1}, 1.0 / static_cast<double>(cfg.base)));
  }
  if (cfg.fixup) {
    fixup_scale_ = register_parameter("fixup_scale", torch::ones({1}));
    if (cfg.fixup_bias) {
      b1a_ = register_parameter("fixup_bias1a", torch::zeros({1}));
      b1b_ = register_parameter("fixup_bias1b", torch::zeros({1}));
      b2a_ = register_parameter("fixup_bias2a", torch::zeros({1}));
      b2b_ = register_parameter("fixup_bias2b", torch::zeros({1}));
    }
  }
}

torch::Tensor FlexBasicBlockImpl::unit(const torch::Tensor& x, CallableList& conv, CallableList& bn,
                                       CallableList& act, size_t k, const torch::Tensor* skip) {
  auto add = [skip](const torch::Tensor& y) { return skip ? y + *skip : y; };
  switch (order_) {
    case Order::cbas: return add(act(k, bn(k, conv(k, x))));
    case Order::cbsa: return act(k, add(bn(k, conv(k, x))));
    case Order::cabs: return add(bn(k, act(k, conv(k, x))));
    case Order::bacs: return add(conv(k, act(k, bn(k, x))));
    case Order::bcas: return add(act(k, conv(k, bn(k, x))));
  }
  return x;
}

torch::Tensor FlexBasicBlockImpl::forward(const torch::Tensor& input) {
  if (only_shrink_) return shrink_->forward(input);
  const torch::Tensor x = shrink_ ? shrink_->forward(input) : input;
  const torch::Tensor xb = add_bias(x, b1a_);
  // An identity shortcut carries the unbiased input (Fixup, docs/models.md#fixup).
  const torch::Tensor residual = skip_.seq ? skip_(xb) : x;

  if (cfg_.fixup) {
    torch::Tensor out = add_bias((*relu1_)(0, add_bias((*conv1_)(0, xb), b1b_)), b2a_);
    out = (*relu2_)(0, (*conv2_)(0, out));
    out = add_bias(out * fixup_scale_, b2b_) + residual;
    return fix_relu_.is_empty() ? out : fix_relu_.forward(out);
  }

  const bool layerwise = !cfg_.origin;
  torch::Tensor result;
  for (size_t k = 0; k < static_cast<size_t>(cfg_.base); ++k) {
    torch::Tensor out = f0x0_ ? xb : unit(xb, *conv1_, *bn1_, *relu1_, k, layerwise ? &residual : nullptr);
    torch::Tensor output = unit(out, *conv2_, *bn2_, *relu2_, k, layerwise ? &out : nullptr);
    if (scales_) output = output * scales_->at(k);
    result = result.defined() ? result + output : output;
  }
  if (cfg_.origin) {
    if (!fix_bn_.is_empty()) result = fix_bn_.forward(result);
    result = result + residual;
    if (!fix_relu_.is_empty()) result = fix_relu_.forward(result);
  }
  return result;
}

}  // namespace qplug_resnet_common
