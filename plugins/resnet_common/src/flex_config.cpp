#include <torch/torch.h>

#include "resnet_common/flex_config.hpp"

#include <qsdk/error.hpp>

namespace qplug_resnet_common {

qsdk::EnumNames<Order> order_names(const std::vector<Order>& keep) {
  static const qsdk::EnumNames<Order> all{{"cbas", Order::cbas},
                                          {"cbsa", Order::cbsa},
                                          {"cabs", Order::cabs},
                                          {"bacs", Order::bacs},
                                          {"bcas", Order::bcas}};
  qsdk::EnumNames<Order> out;
  for (Order k : keep)
    for (const auto& entry : all)
      if (entry.second == k) out.push_back(entry);
  return out;
}

const qsdk::EnumNames<Stem>& stem_names() {
  static const qsdk::EnumNames<Stem> names{{"auto", Stem::automatic},
                                           {"imagenet", Stem::imagenet},
                                           {"cifar", Stem::cifar},
                                           {"tresnet", Stem::tresnet},
                                           {"tresnet_maxpool", Stem::tresnet_maxpool}};
  return names;
}

const std::vector<int64_t>& flexible_depths() {
  static const std::vector<int64_t> depths{18, 20, 32, 34, 44, 50, 56, 101};
  return depths;
}

StageTable flexible_stages(int64_t depth) {
  switch (depth) {
    case 18: return {{2, 2, 2, 2}, false};
    case 34: return {{3, 4, 6, 3}, false};
    case 50: return {{3, 4, 6, 3}, true};
    case 101: return {{3, 4, 23, 3}, true};
    case 20: return {{3, 3, 3}, false};
    case 32: return {{5, 5, 5}, false};
    case 44: return {{7, 7, 7}, false};
    case 56: return {{9, 9, 9}, false};
    default: break;
  }
  qsdk::config_error("depth", "unsupported depth " + std::to_string(depth),
                     "use 18, 34, 50, 101 (ImageNet tables) or 20, 32, 44, 56 (CIFAR tables)");
}

void FlexibleConfig::validate() const {
  const StageTable table = flexible_stages(depth);
  if (stem_kernel != 1 && stem_kernel != 3) qsdk::config_error("stem_kernel", "must be 1 or 3");
  if (width_alpha <= 0.0 || static_cast<int64_t>(64 * width_alpha) < 1)
    qsdk::config_error("width_alpha", "gives fewer than one stem channel", "use width_alpha >= 1/64");
  if (base < 1) qsdk::config_error("base", "must be at least 1");
  if (fixup && base != 1)
    qsdk::config_error("base", "Fixup supports a single branch (base = 1)", "set base = 1 or disable fixup");
  if (prone && pre_bn)
    qsdk::config_error("pre_bn", "Prone units do not support the pre-activation network", "set pre_bn = false");
  if (table.bottleneck) {
    if (!origin)
      qsdk::config_error("origin",
                         "layer-wise (Bi-Real) skips need equal channels around every conv, which a "
                         "Bottleneck does not have",
                         "use origin = true with depth 50/101, or a BasicBlock depth");
    if (lossless_downsample)
      qsdk::config_error("lossless_downsample", "is only implemented for BasicBlock depths",
                         "use depth 18/34/20/32/44/56");
    if (base != 1) qsdk::config_error("base", "Bottleneck blocks support a single branch (base = 1)");
  }
  if (lossless_downsample) {
    if (shrink_order.find('c') == std::string::npos)
      qsdk::config_error("shrink_order", "must contain 'c' (the space-to-depth conv)",
                         "e.g. shrink_order = \"cb\" (the reference breaks the channel count without it)");
    for (char c : shrink_order)
      if (c != 'c' && c != 'b' && c != 'a')
        qsdk::config_error("shrink_order", std::string("unknown letter '") + c + "'",
                           "use only c (conv), b (BN) and a (activation)");
    if (f3x3)
      qsdk::config_error("f3x3", "cannot be combined with lossless_downsample (the reference leaves it undefined)");
  }
  if (fixup && !origin)
    qsdk::config_error("origin", "Fixup needs the block-level residual", "set origin = true");
  if (fixup && prone) qsdk::config_error("prone", "cannot be combined with fixup");
  if (dchr && singleconv)
    qsdk::config_error("dchr", "needs the AvgPool shortcut", "set singleconv = false with dchr");
  if ((f0x0 || f1x1) && !lossless_downsample)
    qsdk::config_error(f0x0 ? "f0x0" : "f1x1", "is a sub-option of the lossless shrink",
                       "set lossless_downsample = true (it applies to the strided, shrunk blocks)");
  if (f0x0 && (prone || fixup)) qsdk::config_error("f0x0", "cannot be combined with prone or fixup");
  if (s1x1 && s3x3) qsdk::config_error("s3x3", "conflicts with s1x1");
}

}  // namespace qplug_resnet_common
