#include <torch/torch.h>

#include "resnet_common/init.hpp"
#include "resnet_common/norm_act.hpp"
#include "resnet_common/ops.hpp"
#include "resnet_common/vanilla_resnet.hpp"

#include <qsdk/error.hpp>

namespace qplug_resnet_common {
namespace {


// conv, BN (torchvision `downsample`: strided 1x1 conv + BN), role shortcut.
torch::nn::Sequential make_downsample(const VanillaConfig& cfg, qsdk::LayerFactory& layers,
                                      const std::string& path, int64_t in, int64_t out, int64_t stride) {
  torch::nn::Sequential seq;
  seq->push_back(layers.conv2d(join_path(path, "downsample.0"), qsdk::LayerRole::shortcut,
                               conv_options(in, out, 1, stride, 0)));
  seq->push_back(make_norm(cfg.norm, out, cfg.norm_groups));
  return seq;
}

class TvBasicBlockImpl : public torch::nn::Module {
 public:
  TvBasicBlockImpl(const VanillaConfig& cfg, qsdk::LayerFactory& layers, const std::string& path, int64_t in,
                   int64_t planes, int64_t stride) {
    conv1_ = register_module("conv1", layers.conv2d(join_path(path, "conv1"), qsdk::LayerRole::body,
                                                    conv_options(in, planes, 3, stride, 1)));
    bn1_ = make_norm(cfg.norm, planes, cfg.norm_groups);
    register_module("bn1", bn1_.ptr());
    relu_ = make_act(cfg.activation);
    register_module("relu", relu_.ptr());
    conv2_ = register_module("conv2", layers.conv2d(join_path(path, "conv2"), qsdk::LayerRole::body,
                                                    conv_options(planes, planes, 3, 1, 1)));
    bn2_ = make_norm(cfg.norm, planes, cfg.norm_groups);
    register_module("bn2", bn2_.ptr());
    if (stride != 1 || in != planes)
      downsample_ = register_module("downsample", make_downsample(cfg, layers, path, in, planes, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = relu_.forward(bn1_.forward(conv1_->forward(x)));
    out = bn2_.forward(conv2_->forward(out));
    return relu_.forward(out + (downsample_ ? downsample_->forward(x) : x));
  }
  torch::nn::Module& last_norm() { return *bn2_.ptr(); }

 private:
  std::shared_ptr<qsdk::Conv2dLayerImpl> conv1_, conv2_;
  torch::nn::AnyModule bn1_, bn2_, relu_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(TvBasicBlock);

class TvBottleneckImpl : public torch::nn::Module {
 public:
  TvBottleneckImpl(const VanillaConfig& cfg, qsdk::LayerFactory& layers, const std::string& path, int64_t in,
                   int64_t planes, int64_t stride) {
    const int64_t out = 4 * planes;
    conv1_ = register_module("conv1", layers.conv2d(join_path(path, "conv1"), qsdk::LayerRole::body,
                                                    conv_options(in, planes, 1, 1, 0)));
    bn1_ = make_norm(cfg.norm, planes, cfg.norm_groups);
    register_module("bn1", bn1_.ptr());
    // V1.5: the stride sits on the 3x3 conv.
    conv2_ = register_module("conv2", layers.conv2d(join_path(path, "conv2"), qsdk::LayerRole::body,
                                                    conv_options(planes, planes, 3, stride, 1)));
    bn2_ = make_norm(cfg.norm, planes, cfg.norm_groups);
    register_module("bn2", bn2_.ptr());
    conv3_ = register_module("conv3", layers.conv2d(join_path(path, "conv3"), qsdk::LayerRole::body,
                                                    conv_options(planes, out, 1, 1, 0)));
    bn3_ = make_norm(cfg.norm, out, cfg.norm_groups);
    register_module("bn3", bn3_.ptr());
    relu_ = make_act(cfg.activation);
    register_module("relu", relu_.ptr());
    if (stride != 1 || in != out)
      downsample_ = register_module("downsample", make_downsample(cfg, layers, path, in, out, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = relu_.forward(bn1_.forward(conv1_->forward(x)));
    out = relu_.forward(bn2_.forward(conv2_->forward(out)));
    out = bn3_.forward(conv3_->forward(out));
    return relu_.forward(out + (downsample_ ? downsample_->forward(x) : x));
  }
  torch::nn::Module& last_norm() { return *bn3_.ptr(); }

 private:
  std::shared_ptr<qsdk::Conv2dLayerImpl> conv1_, conv2_, conv3_;
  torch::nn::AnyModule bn1_, bn2_, bn3_, relu_;
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(TvBottleneck);

}  // namespace

VanillaResNetImpl::VanillaResNetImpl(const VanillaConfig& cfg, const qsdk::ModelContext& ctx) : cfg_(cfg) {
  std::vector<int64_t> blocks;
  bool bottleneck = false;
  switch (cfg.depth) {
    case 18: blocks = {2, 2, 2, 2}; break;
    case 34: blocks = {3, 4, 6, 3}; break;
    case 50: blocks = {3, 4, 6, 3}; bottleneck = true; break;
    case 101: blocks = {3, 4, 23, 3}; bottleneck = true; break;
    default:
      qsdk::config_error("depth", "unsupported depth " + std::to_string(cfg.depth), "use 18, 34, 50 or 101");
  }
  if (!ctx.layers)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "model", "ModelContext.layers is null",
                      "the host must pass its layer factory");
  auto& layers = *ctx.layers;
  const int64_t in_channels = ctx.input_shape.empty() ? 3 : ctx.input_shape[0];
  conv1_ = register_module("conv1", layers.conv2d("conv1", qsdk::LayerRole::stem, conv_options(in_channels, 64, 7, 2, 3)));
  bn1_ = make_norm(cfg.norm, 64, cfg.norm_groups);
  register_module("bn1", bn1_.ptr());
  relu_ = make_act(cfg.activation);
  register_module("relu", relu_.ptr());

  std::vector<torch::nn::Module*> last_norms;
  int64_t channels = 64;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const int64_t planes = int64_t{64} << i;
    const std::string name = "layer" + std::to_string(i + 1);
    torch::nn::Sequential stage;
    for (int64_t j = 0; j < blocks[i]; ++j) {
      const std::string path = name + "." + std::to_string(j);
      const int64_t stride = (i > 0 && j == 0) ? 2 : 1;
      if (bottleneck) {
        TvBottleneck block(cfg, layers, path, channels, planes, stride);
        last_norms.push_back(&block->last_norm());
        stage->push_back(block);
        channels = 4 * planes;
      } else {
        TvBasicBlock block(cfg, layers, path, channels, planes, stride);
        last_norms.push_back(&block->last_norm());
        stage->push_back(block);
        channels = planes;
      }
    }
    stages_.push_back(register_module(name, stage));
  }
  fc_ = register_module("fc", layers.linear("fc", qsdk::LayerRole::head,
                                            torch::nn::LinearOptions(channels, ctx.num_classes)));
  init_convs(*this);
  if (cfg.zero_init_residual)
    for (auto* norm : last_norms) zero_norm_weight(*norm);
}

torch::Tensor VanillaResNetImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = relu_.forward(bn1_.forward(conv1_->forward(input)));
  x = cfg_.caffe_pooling ? torch::max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1}, /*ceil_mode=*/true)
                         : torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  for (auto& stage : stages_) x = stage->forward(x);
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return fc_->forward(x);
}

}  // namespace qplug_resnet_common
