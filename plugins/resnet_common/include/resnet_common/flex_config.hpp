// Options of the flexible ResNet family (docs/models.md#flexible-resnet) and the schema
// fragments the variant plugins share.
#pragma once

#include "resnet_common/norm_act.hpp"

#include <qsdk/schema.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace qplug_resnet_common {

/// The reference's sequence keyword of a block unit (docs/models.md#unit-orders);
/// the TOML spelling is the enumerator name.
enum class Order { cbas, cbsa, cabs, bacs, bcas };

/// `stem`: the stem of the flexible ResNet (docs/models.md#stem-stages-and-head).
enum class Stem {
  automatic,        ///< "auto": cifar for inputs <= 64 pixels, else imagenet
  imagenet,         ///< 7x7/2 conv + max-pool
  cifar,            ///< 3x3/1 conv
  tresnet,          ///< space-to-depth 4 + conv
  tresnet_maxpool,  ///< space-to-depth 2 + conv + max-pool
};

/// Every order, in the order `qhost describe` lists them for most plugins.
inline const std::vector<Order> kOrders{Order::cbsa, Order::cbas, Order::cabs, Order::bacs, Order::bcas};

/// The TOML spellings of the orders in `keep`, in `keep`'s order (a plugin
/// lists its default first).
qsdk::EnumNames<Order> order_names(const std::vector<Order>& keep = kOrders);
/// The TOML spellings of `stem`.
const qsdk::EnumNames<Stem>& stem_names();

/// Everything that shapes a flexible ResNet. Field names follow the options
/// the plugins expose; each comment names the reference keyword.
struct FlexibleConfig {
  int64_t depth = 18;              ///< 18/34/50/101 (ImageNet tables) or 20/32/44/56 (CIFAR tables)
  Order order = Order::cbsa;       ///< unit order keyword (cbas, cbsa, cabs, bacs, bcas)
  bool origin = true;              ///< `origin`: block-level residual; false = Bi-Real layer-wise skips
  bool pre_bn = false;             ///< `preBN`: no stem BN/act, BN (no act) before the pooling head
  bool patch_pre_bn_stem = false;  ///< `patch_preBN_stem`: head BN + act (and stem BN + act with fix_pooling)
  bool fix_pooling = false;        ///< `fix_pooling`: stem conv -> BN -> pool (else conv -> pool -> BN)
  bool fix = false;                ///< `fix`: ReLU after the residual add (cbsa/cbas), extra BN (bacs/bcas)
  bool singleconv = false;         ///< `singleconv`: strided 1x1 shortcut conv instead of AvgPool + 1x1 conv
  bool identify_norm = false;      ///< `identify_norm`: BN shortcut even on identity blocks
  bool dchr = false;               ///< `DCHR`: shortcut duplicates channels instead of a 1x1 conv
  bool zir = false;                ///< `zir`: zero-init the last BN of each residual branch
  bool group_net = false;          ///< `group-net`: no activation after the stem BN
  Stem stem = Stem::automatic;     ///< auto | imagenet | cifar | tresnet | tresnet_maxpool
  int64_t stem_kernel = 1;         ///< `--stem_kernel` of the TResNet stem (1 or 3)
  double width_alpha = 1.0;        ///< `--width_alpha`: stem width = int(64 * alpha)
  Norm norm = Norm::batchnorm;     ///< normalisation kind (docs/models.md#normalisation-and-activation)
  int64_t norm_groups = 0;         ///< groups of group_norm
  Act activation = Act::relu;      ///< activation kind (docs/models.md#normalisation-and-activation)
  int64_t base = 1;                ///< `--base`: parallel branches per block (Group-Net)
  // Lossless down-sampling (`ReShapeResolution`, docs/models.md#flexible-basicblock item 3).
  bool lossless_downsample = false;  ///< replace strided blocks by space-to-depth + 1x1 conv ("ldn"/"ldq")
  std::string shrink_order = "c";    ///< `--order` letters of the shrink: c = conv, b = BN, a = act
  bool ldn3x3 = false;               ///< `ldn3x3`: 3x3 shrink conv and the block is only the shrink
  bool f0x0 = false;                 ///< `f0x0`: drop the first conv unit
  bool f1x1 = false;                 ///< `f1x1`: first conv 1x1
  bool s1x1 = false;                 ///< `s1x1`: second conv 1x1
  bool f3x3 = false;                 ///< `f3x3`: keep the first conv a plain 3x3 (Prone)
  // Prone (docs/models.md#flexible-basicblock item 4, docs/models.md#prone-unit).
  bool prone = false;                ///< `prone`: 3x3 convs become Prone units
  bool no_prone_downsample = false;  ///< `no_prone_downsample`: strided convs stay 3x3
  bool bn_before_restore = false;    ///< `bn_before_restore`: BN inside the unit before depth-to-space
  bool s3x3 = false;                 ///< `s3x3`: second conv a plain 3x3
  bool force_padding = false;        ///< `force_padding`: +1 padding for strided blocks at resolution 14
  // Fixup (docs/models.md#fixup).
  bool fixup = false;       ///< `fixup`: no BN, scalar scale per block, Fixup init
  bool fixup_bias = false;  ///< `bias`: the scalar Fixup biases

  /// Checks combinations the schema cannot express; throws qsdk::Error(config).
  void validate() const;
};

/// Blocks per stage and block type of a depth.
struct StageTable {
  std::vector<int64_t> blocks;  ///< blocks per stage
  bool bottleneck = false;      ///< Bottleneck (expansion 4) or BasicBlock
};

/// The depth table of the flexible ResNet (docs/models.md#model-zoo-and-depth-tables); throws on unknown depth.
StageTable flexible_stages(int64_t depth);

/// Allowed depths of the flexible family, for error messages.
const std::vector<int64_t>& flexible_depths();

/// Schema fragments. Each variant plugin's options struct derives from
/// FlexibleConfig (setting its own defaults in its constructor) and picks the
/// groups of fields it exposes, so names, docs and ranges are written once.
namespace fields {

template <class T, class M>
constexpr M T::*member(M FlexibleConfig::*m) {
  static_assert(std::is_base_of_v<FlexibleConfig, T>, "options must derive from FlexibleConfig");
  return static_cast<M T::*>(m);
}

/// depth, order, width_alpha, stem, stem_kernel, norm, norm_groups, activation.
template <class T>
void structure(qsdk::Schema<T>& s, const std::vector<Order>& orders, bool basic_only) {
  s.field("depth", member<T>(&FlexibleConfig::depth),
          basic_only ? "network depth: 18 or 34 (ImageNet tables) or 20, 32, 44, 56 (CIFAR tables)"
                     : "network depth: 18, 34, 50, 101 (ImageNet tables) or 20, 32, 44, 56 (CIFAR tables)")
      .range(18, 101)
      .field("order", member<T>(&FlexibleConfig::order),
             "unit order: c=conv b=BN a=activation s=skip-add (cbsa = torchvision, bacs = pre-activation, "
             "cabs = Group-Net)",
             order_names(orders))
      .field("width_alpha", member<T>(&FlexibleConfig::width_alpha),
             "width multiplier: first stage has int(64*alpha) channels (0.25 gives the CIFAR 16/32/64 net)")
      .range(0.01, 16.0)
      .field("stem", member<T>(&FlexibleConfig::stem),
             "stem: imagenet (7x7/2 conv + max-pool), cifar (3x3/1 conv), tresnet (space-to-depth 4 + conv), "
             "tresnet_maxpool (space-to-depth 2 + conv + max-pool); auto = cifar when the input is <= 64 "
             "pixels, else imagenet",
             stem_names())
      .field("stem_kernel", member<T>(&FlexibleConfig::stem_kernel), "kernel of the TResNet stem conv (1 or 3)")
      .range(1, 3)
      .field("norm", member<T>(&FlexibleConfig::norm), "normalisation layer of every block and the stem", norm_names())
      .field("norm_groups", member<T>(&FlexibleConfig::norm_groups), "groups of norm = group_norm")
      .at_least(0)
      .field("activation", member<T>(&FlexibleConfig::activation),
             "activation: relu, prelu, none (the reference's NReLU), relu6, leaky_relu", act_names());
}

/// fix_pooling, fix, singleconv, pre_bn, patch_pre_bn_stem, identify_norm, zir.
template <class T>
void keywords(qsdk::Schema<T>& s) {
  s.field("fix_pooling", member<T>(&FlexibleConfig::fix_pooling),
          "stem order conv -> BN -> act -> max-pool (false: conv -> max-pool -> BN -> act, the reference default)")
      .field("fix", member<T>(&FlexibleConfig::fix),
             "with cbsa/cbas move the last activation after the residual add; with bacs/bcas add a BN "
             "before the add")
      .field("singleconv", member<T>(&FlexibleConfig::singleconv),
             "shortcut is a strided 1x1 conv + BN (torchvision option B) instead of AvgPool + 1x1 conv")
      .field("pre_bn", member<T>(&FlexibleConfig::pre_bn),
             "pre-activation network: no stem BN/activation, a BN (no activation) before the head")
      .field("patch_pre_bn_stem", member<T>(&FlexibleConfig::patch_pre_bn_stem),
             "with pre_bn: head BN gets an activation, and with fix_pooling the stem BN + activation return")
      .field("identify_norm", member<T>(&FlexibleConfig::identify_norm),
             "identity shortcuts get a BN of their input")
      .field("zir", member<T>(&FlexibleConfig::zir),
             "zero-initialise the weight of the last BN of every residual branch");
}

/// origin.
template <class T>
void origin(qsdk::Schema<T>& s) {
  s.field("origin", member<T>(&FlexibleConfig::origin),
          "block-level residual (true) or Bi-Real layer-wise skips around every conv (false)");
}

/// lossless_downsample, shrink_order, ldn3x3, f0x0, f1x1, s1x1, dchr.
template <class T>
void downsample(qsdk::Schema<T>& s) {
  s.field("lossless_downsample", member<T>(&FlexibleConfig::lossless_downsample),
          "ldn/ldq: strided blocks first apply space-to-depth + 1x1 conv (role shortcut: FP with real_skip = "
          "ldn, quantized = ldq), then run as stride-1 blocks")
      .field("shrink_order", member<T>(&FlexibleConfig::shrink_order),
             "letters of the lossless shrink, in order: c = s2d+conv (required), b = BN, a = activation")
      .field("ldn3x3", member<T>(&FlexibleConfig::ldn3x3),
             "lossless shrink conv is 3x3 and a strided block is only the shrink")
      .field("f0x0", member<T>(&FlexibleConfig::f0x0), "drop the first conv unit of each shrunk (strided) block")
      .field("f1x1", member<T>(&FlexibleConfig::f1x1), "first conv of each shrunk (strided) block is 1x1")
      .field("s1x1", member<T>(&FlexibleConfig::s1x1), "second conv of each shrunk (strided) block is 1x1")
      .field("dchr", member<T>(&FlexibleConfig::dchr),
             "shortcuts duplicate the (pooled) input channels instead of a 1x1 conv");
}

/// Prone fields.
template <class T>
void prone(qsdk::Schema<T>& s) {
  s.field("no_prone_downsample", member<T>(&FlexibleConfig::no_prone_downsample),
          "strided 3x3 convs stay plain convs (table flag npd)")
      .field("bn_before_restore", member<T>(&FlexibleConfig::bn_before_restore),
             "BN inside the Prone unit before depth-to-space (false: the block's BN after it, table flag postbn)")
      .field("f3x3", member<T>(&FlexibleConfig::f3x3), "first conv of each block stays a plain 3x3 conv")
      .field("s1x1", member<T>(&FlexibleConfig::s1x1), "second conv of each BasicBlock is a plain 1x1 conv")
      .field("s3x3", member<T>(&FlexibleConfig::s3x3), "second conv of each BasicBlock stays a plain 3x3 conv")
      .field("force_padding", member<T>(&FlexibleConfig::force_padding),
             "strided blocks at resolution 14 pad by one more pixel (ImageNet Prone)");
}

}  // namespace fields
}  // namespace qplug_resnet_common
