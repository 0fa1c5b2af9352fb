// resnet: the flexible ResNet family of the reference (docs/models.md#flexible-resnet,
// docs/models.md#flexible-bottleneck).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"
#include "resnet_common/flex_resnet.hpp"

namespace qplug_resnet {

namespace rc = qplug_resnet_common;

/// Options of `model/resnet`. Defaults give the torchvision-equivalent network
/// (the reference's `origin,cbsa,fix_pooling,singleconv,fix`, docs/models.md#b-flexible-resnet-18-equivalent-to-a /
/// docs/models.md#f-cifar-resnet-20);
/// the pre-activation network of the LQ/DoReFa/PACT rows (docs/models.md#c-pre-activation-resnet-18) is
/// `order = "bacs"`, `pre_bn = true`, `fix_pooling = false`, `singleconv = false`, `fix = false`.
///
/// Example (CIFAR ResNet-20 with lossless down-sampling):
/// ```toml
/// [model]
/// type = "resnet"
/// depth = 20
/// width_alpha = 0.25
/// lossless_downsample = true
/// shrink_order = "cb"
/// ```
struct ResNetOptions : rc::FlexibleConfig {
  ResNetOptions() {
    order = rc::Order::cbsa;
    origin = true;
    fix_pooling = true;
    singleconv = true;
    fix = true;
  }
  static qsdk::Schema<ResNetOptions> schema() {
    qsdk::Schema<ResNetOptions> s(
        "Flexible ResNet (ImageNet 18/34/50/101, CIFAR 20/32/44/56): unit orders, pre-activation, "
        "shortcut styles, TResNet/CIFAR stems, width multiplier, lossless down-sampling");
    rc::fields::structure(s, rc::kOrders, false);
    rc::fields::keywords(s);
    rc::fields::origin(s);
    s.field("group_net", rc::fields::member<ResNetOptions>(&rc::FlexibleConfig::group_net),
            "no activation after the stem BN (the reference's group-net keyword)");
    rc::fields::downsample(s);
    return s;
  }
};

}  // namespace qplug_resnet

QSDK_PLUGIN("resnet", "0.1.0", "Flexible ResNet family of QTool") {
  registrar.add_model<qplug_resnet_common::FlexibleResNetImpl, qplug_resnet::ResNetOptions>("resnet");
}
