// bireal_resnet: flexible ResNet with Bi-Real layer-wise shortcuts (docs/models.md#unit-orders,
// docs/models.md#d-bi-real-resnet-18).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"
#include "resnet_common/flex_resnet.hpp"

namespace qplug_bireal_resnet {

namespace rc = qplug_resnet_common;

/// Options of `model/bireal_resnet`: every conv unit adds its own input
/// (the reference without `origin`). Defaults are the Bi-Real ResNet-18 of the
/// results table (`NReLU,fix_pooling,cbsa,singleconv`); pair it with
/// `[quant] real_skip = true, padding_after_quant = true` and an XNOR quantizer.
///
/// Example:
/// ```toml
/// [model]
/// type = "bireal_resnet"
/// depth = 18
/// activation = "none"
/// ```
struct BirealResNetOptions : rc::FlexibleConfig {
  BirealResNetOptions() {
    origin = false;
    order = rc::Order::cbsa;
    fix_pooling = true;
    singleconv = true;
    activation = rc::Act::none;
  }
  static qsdk::Schema<BirealResNetOptions> schema() {
    qsdk::Schema<BirealResNetOptions> s(
        "Bi-Real ResNet: flexible BasicBlock ResNet with a shortcut around every conv");
    rc::fields::structure(s, rc::kOrders, true);
    rc::fields::keywords(s);
    return s;
  }
};

}  // namespace qplug_bireal_resnet

QSDK_PLUGIN("bireal_resnet", "0.1.0", "Bi-Real ResNet (layer-wise shortcuts)") {
  registrar.add_model<qplug_resnet_common::FlexibleResNetImpl, qplug_bireal_resnet::BirealResNetOptions>(
      "bireal_resnet");
}
