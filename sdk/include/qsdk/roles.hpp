// qsdk/roles.hpp - where a quantizer sits: the layer's role and the tensor it sees.
// SPDX-License-Identifier: Apache-2.0
//
// The one place these names are spelled: `[quant]` (roles in
// `[[quant.override]] match.role`, targets as sub-tables), the layer log and the
// quantizer context all go through to_string / *_from_string below.
#pragma once

#include <qsdk/export.hpp>

#include <optional>
#include <string>

namespace qsdk {

/// What a layer is for; the host's quantization policy is keyed on it.
enum class LayerRole {
  stem,      ///< first convolution(s), full precision by default
  body,      ///< convolutions inside blocks
  shortcut,  ///< downsample / skip convolutions (quantized unless real_skip)
  head,      ///< the classifier, full precision by default
};

/// Every role, in declaration order.
inline constexpr LayerRole kAllLayerRoles[] = {LayerRole::stem, LayerRole::body, LayerRole::shortcut,
                                               LayerRole::head};

/// "stem", "body", "shortcut", "head".
QSDK_API const char* to_string(LayerRole role);

/// The role spelled `name` (as to_string writes it), or nullopt.
QSDK_API std::optional<LayerRole> layer_role_from_string(const std::string& name);

/// Which tensor a quantizer sees (the reference's `fm`, `wt` and `ot` tags).
enum class QuantTarget {
  activation,  ///< `fm`: the input feature map of a layer
  weight,      ///< `wt`: the layer's weight
  output,      ///< `ot`: the layer's output
};

/// Every target in the order `[quant]` lists them: weight, activation, output.
inline constexpr QuantTarget kAllQuantTargets[] = {QuantTarget::weight, QuantTarget::activation,
                                                   QuantTarget::output};

/// "activation", "weight", "output".
QSDK_API const char* to_string(QuantTarget target);

/// The target spelled `name` (as to_string writes it), or nullopt.
QSDK_API std::optional<QuantTarget> quant_target_from_string(const std::string& name);

}  // namespace qsdk
