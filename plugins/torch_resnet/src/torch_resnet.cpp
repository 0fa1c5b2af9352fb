// torch_resnet: the torchvision-structured ResNet-18/34/50/101 (docs/models.md#torchvision-resnet).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/norm_act.hpp"
#include "resnet_common/vanilla_resnet.hpp"

namespace qplug_torch_resnet {

/// Options of `model/torch_resnet`.
///
/// Example:
/// ```toml
/// [model]
/// type = "torch_resnet"
/// depth = 50
/// ```
struct TorchResNetOptions : qplug_resnet_common::VanillaConfig {
  static qsdk::Schema<TorchResNetOptions> schema() {
    using O = TorchResNetOptions;
    using B = qplug_resnet_common::VanillaConfig;
    return qsdk::Schema<O>("torchvision ResNet (BasicBlock 18/34, Bottleneck V1.5 50/101), torchvision parameter names")
        .field("depth", static_cast<int64_t O::*>(&B::depth), "network depth: 18, 34, 50 or 101")
        .range(18, 101)
        .field("norm", &B::norm, "normalisation layer", qplug_resnet_common::norm_names())
        .field("norm_groups", static_cast<int64_t O::*>(&B::norm_groups), "groups of norm = group_norm")
        .at_least(0)
        .field("activation", &B::activation, "activation: relu, prelu, none (NReLU), relu6, leaky_relu",
               qplug_resnet_common::act_names())
        .field("caffe_pooling", static_cast<bool O::*>(&B::caffe_pooling),
               "stem max-pool kernel 3 stride 2 without padding, ceil mode (caffe-pooling)")
        .field("zero_init_residual", static_cast<bool O::*>(&B::zero_init_residual),
               "zero the weight of the last BN of every residual branch");
  }
};

}  // namespace qplug_torch_resnet

QSDK_PLUGIN("torch_resnet", "0.1.0", "torchvision-structured ResNet-18/34/50/101") {
  using namespace qplug_torch_resnet;
  registrar.add_model<qplug_resnet_common::VanillaResNetImpl, TorchResNetOptions>("torch_resnet");
}
