// groupnet_resnet: Group-Net ResNet with `base` parallel branches (docs/models.md#flexible-basicblock item 6,
// docs/models.md#e-group-net-resnet-18).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"
#include "resnet_common/flex_resnet.hpp"

namespace qplug_groupnet_resnet {

namespace rc = qplug_resnet_common;

/// Options of `model/groupnet_resnet`: each block holds `base` branches of
/// conv pairs (ModuleLists `conv1.K`, `conv2.K`, ...) summed with trainable
/// scalars `scales.K` (init 1/base); the stem BN has no activation. Defaults are
/// the table's Group-Net ResNet-18 (`cabs,fix,group-net,singleconv`, base 5,
/// layer-wise shortcuts); pair it with `padding_after_quant = true` and XNOR.
///
/// Example:
/// ```toml
/// [model]
/// type = "groupnet_resnet"
/// base = 5
/// ```
struct GroupNetResNetOptions : rc::FlexibleConfig {
  GroupNetResNetOptions() {
    origin = false;
    order = rc::Order::cabs;
    fix = true;
    singleconv = true;
    group_net = true;
    base = 5;
  }
  static qsdk::Schema<GroupNetResNetOptions> schema() {
    qsdk::Schema<GroupNetResNetOptions> s("Group-Net ResNet: parallel binary branches per block");
    // Its default, cabs, listed first.
    rc::fields::structure(s, {rc::Order::cabs, rc::Order::cbsa, rc::Order::cbas, rc::Order::bacs, rc::Order::bcas},
                          true);
    rc::fields::keywords(s);
    s.field("base", rc::fields::member<GroupNetResNetOptions>(&rc::FlexibleConfig::base),
            "parallel branches per block (1 = a plain flexible block)")
        .range(1, 64);
    rc::fields::origin(s);
    return s;
  }
};

}  // namespace qplug_groupnet_resnet

QSDK_PLUGIN("groupnet_resnet", "0.1.0", "Group-Net ResNet (parallel branches)") {
  registrar.add_model<qplug_resnet_common::FlexibleResNetImpl, qplug_groupnet_resnet::GroupNetResNetOptions>(
      "groupnet_resnet");
}
