// prone_resnet: flexible ResNet whose 3x3 convs are Prone units (docs/models.md#flexible-basicblock item 4,
// docs/models.md#prone-unit, docs/models.md#g-cifar-resnet-with-prone).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"
#include "resnet_common/flex_resnet.hpp"

namespace qplug_prone_resnet {

namespace rc = qplug_resnet_common;

/// Options of `model/prone_resnet`: 3x3 convs become space-to-depth + 1x1 conv
/// + depth-to-space units (`<conv>.conv` inside, e.g. `layer1.0.conv1.0.conv`).
/// Defaults are the table's `prone,npd,keepdim,postbn` CIFAR/ImageNet rows on
/// the torchvision-equivalent structure.
///
/// Example:
/// ```toml
/// [model]
/// type = "prone_resnet"
/// depth = 18
/// no_prone_downsample = true
/// ```
struct ProneResNetOptions : rc::FlexibleConfig {
  ProneResNetOptions() {
    prone = true;
    no_prone_downsample = true;
    order = rc::Order::cbsa;
    origin = true;
    fix_pooling = true;
    singleconv = true;
    fix = true;
  }
  static qsdk::Schema<ProneResNetOptions> schema() {
    qsdk::Schema<ProneResNetOptions> s("Prone ResNet: Point-wise and Reshape Only convolutions");
    rc::fields::structure(s, rc::kOrders, false);
    rc::fields::keywords(s);
    rc::fields::origin(s);
    rc::fields::prone(s);
    return s;
  }
};

}  // namespace qplug_prone_resnet

QSDK_PLUGIN("prone_resnet", "0.1.0", "Prone ResNet (point-wise and reshape only)") {
  registrar.add_model<qplug_resnet_common::FlexibleResNetImpl, qplug_prone_resnet::ProneResNetOptions>(
      "prone_resnet");
}
