// fixup_resnet: normalisation-free ResNet with Fixup init (docs/models.md#fixup).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"
#include "resnet_common/flex_resnet.hpp"

namespace qplug_fixup_resnet {

namespace rc = qplug_resnet_common;

/// Options of `model/fixup_resnet`: block and stem BNs removed, a trainable
/// `fixup_scale` per block, scalar biases `fixup_bias1a`... with `bias`, the
/// last conv of each branch and the classifier zero-initialised. The reference
/// scales the init by the number of stages, not of residual branches (kept).
///
/// Example:
/// ```toml
/// [model]
/// type = "fixup_resnet"
/// depth = 18
/// bias = true
/// ```
struct FixupResNetOptions : rc::FlexibleConfig {
  FixupResNetOptions() {
    fixup = true;
    fixup_bias = true;
    order = rc::Order::cbsa;
    origin = true;
    fix_pooling = true;
    singleconv = true;
    fix = true;
  }
  static qsdk::Schema<FixupResNetOptions> schema() {
    qsdk::Schema<FixupResNetOptions> s("Fixup ResNet: no normalisation, Fixup scalar scale/biases and init");
    rc::fields::structure(s, rc::kOrders, false);
    s.field("fix", rc::fields::member<FixupResNetOptions>(&rc::FlexibleConfig::fix),
            "activation after the residual add (false: after the second conv, the reference without fix)")
        .field("singleconv", rc::fields::member<FixupResNetOptions>(&rc::FlexibleConfig::singleconv),
               "shortcut is a strided 1x1 conv instead of AvgPool + 1x1 conv")
        .field("bias", rc::fields::member<FixupResNetOptions>(&rc::FlexibleConfig::fixup_bias),
               "the scalar Fixup biases (keyword bias)");
    return s;
  }
};

}  // namespace qplug_fixup_resnet

QSDK_PLUGIN("fixup_resnet", "0.1.0", "Fixup ResNet (normalisation-free)") {
  registrar.add_model<qplug_resnet_common::FlexibleResNetImpl, qplug_fixup_resnet::FixupResNetOptions>(
      "fixup_resnet");
}
