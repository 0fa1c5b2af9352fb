#include <torch/torch.h>

#include "resnet_common/norm_act.hpp"

#include <qsdk/distributed.hpp>
#include <qsdk/error.hpp>

namespace qplug_resnet_common {
namespace {

// `static-bn`: statistics fixed at mean 0 and var 1-eps, so y = w*x + b exactly;
// the buffers keep the BatchNorm names so checkpoints look like a BN's.
class StaticBatchNormImpl : public torch::nn::Module {
 public:
  explicit StaticBatchNormImpl(int64_t channels) {
    weight = register_parameter("weight", torch::ones({channels}));
    bias = register_parameter("bias", torch::zeros({channels}));
    running_mean = register_buffer("running_mean", torch::zeros({channels}));
    running_var = register_buffer("running_var", torch::full({channels}, 1.0 - kEps));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, 0.0, kEps,
                             /*cudnn_enabled=*/true);
  }
  static constexpr double kEps = 1e-5;
  torch::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(StaticBatchNorm);

// `freeze-bn`: every value a buffer (never trained), always inference statistics.
class FrozenBatchNormImpl : public torch::nn::Module {
 public:
  explicit FrozenBatchNormImpl(int64_t channels) {
    weight = register_buffer("weight", torch::ones({channels}));
    bias = register_buffer("bias", torch::zeros({channels}));
    running_mean = register_buffer("running_mean", torch::zeros({channels}));
    running_var = register_buffer("running_var", torch::ones({channels}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::batch_norm(x, weight, bias, running_mean, running_var, false, 0.0, 1e-5, true);
  }
  torch::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(FrozenBatchNorm);

// `reverse-bn`: the affine comes first, the (non-affine) normalisation last.
class ReverseBatchNormImpl : public torch::nn::Module {
 public:
  explicit ReverseBatchNormImpl(int64_t channels) {
    weight = register_parameter("weight", torch::ones({channels}));
    bias = register_parameter("bias", torch::zeros({channels}));
    bn = qsdk::make_batch_norm2d(torch::nn::BatchNorm2dOptions(channels).affine(false));
    register_module("bn", bn.ptr());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return bn.forward(x * weight.view({1, -1, 1, 1}) + bias.view({1, -1, 1, 1}));
  }
  torch::Tensor weight, bias;
  torch::nn::AnyModule bn;
};
TORCH_MODULE(ReverseBatchNorm);

}  // namespace

const qsdk::EnumNames<Norm>& norm_names() {
  static const qsdk::EnumNames<Norm> names{{"batchnorm", Norm::batchnorm},         {"static_bn", Norm::static_bn},
                                           {"freeze_bn", Norm::freeze_bn},         {"reverse_bn", Norm::reverse_bn},
                                           {"instance_norm", Norm::instance_norm}, {"group_norm", Norm::group_norm}};
  return names;
}

const qsdk::EnumNames<Act>& act_names() {
  static const qsdk::EnumNames<Act> names{{"relu", Act::relu},
                                          {"prelu", Act::prelu},
                                          {"none", Act::none},
                                          {"relu6", Act::relu6},
                                          {"leaky_relu", Act::leaky_relu}};
  return names;
}

torch::nn::AnyModule make_norm(Norm kind, int64_t channels, int64_t groups) {
  switch (kind) {
    case Norm::batchnorm:
      // Through the SDK so `[distributed] sync_bn` can swap in a synchronised batch norm.
      return qsdk::make_batch_norm2d(torch::nn::BatchNorm2dOptions(channels));
    case Norm::static_bn: return torch::nn::AnyModule(StaticBatchNorm(channels));
    case Norm::freeze_bn: return torch::nn::AnyModule(FrozenBatchNorm(channels));
    case Norm::reverse_bn: return torch::nn::AnyModule(ReverseBatchNorm(channels));
    case Norm::instance_norm: return torch::nn::AnyModule(torch::nn::InstanceNorm2d(channels));
    case Norm::group_norm:
      // The reference takes the group count from fm_quant_group and crashes when unset;
      // here it is an explicit option that must divide every normalised width.
      if (groups <= 0 || channels % groups != 0)
        qsdk::config_error("norm_groups",
                           "group_norm needs norm_groups > 0 dividing " + std::to_string(channels) + " channels (got " +
                               std::to_string(groups) + ")",
                           "set norm_groups to a divisor of every stage width, e.g. 8");
      return torch::nn::AnyModule(torch::nn::GroupNorm(groups, channels));
  }
  // Only a value cast from outside the enum gets here: the schema binds spellings only.
  qsdk::config_error("norm", "unknown normalisation " + std::to_string(static_cast<int>(kind)),
                     "use batchnorm, static_bn, freeze_bn, reverse_bn, instance_norm or group_norm");
}

torch::nn::AnyModule make_act(Act kind) {
  switch (kind) {
    case Act::relu: return torch::nn::AnyModule(torch::nn::ReLU());
    case Act::prelu: return torch::nn::AnyModule(torch::nn::PReLU(torch::nn::PReLUOptions().init(0.25)));
    case Act::none: return torch::nn::AnyModule(torch::nn::Identity());
    case Act::relu6: return torch::nn::AnyModule(torch::nn::ReLU6());
    case Act::leaky_relu:
      return torch::nn::AnyModule(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.01)));
  }
  // Only a value cast from outside the enum gets here: the schema binds spellings only.
  qsdk::config_error("activation", "unknown activation " + std::to_string(static_cast<int>(kind)),
                     "use relu, prelu, none, relu6 or leaky_relu");
}

torch::nn::AnyModule make_identity() { return torch::nn::AnyModule(torch::nn::Identity()); }

}  // namespace qplug_resnet_common
