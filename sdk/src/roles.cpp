// The names of layer roles and quantized tensors (qsdk/roles.hpp). Free of
// LibTorch, so the TOML fuzz target (tools/fuzz.sh config) can link it.
#include <qsdk/roles.hpp>

namespace qsdk {

const char* to_string(QuantTarget target) {
  switch (target) {
    case QuantTarget::activation: return "activation";
    case QuantTarget::weight: return "weight";
    case QuantTarget::output: return "output";
  }
  return "unknown";
}

const char* to_string(LayerRole role) {
  switch (role) {
    case LayerRole::stem: return "stem";
    case LayerRole::body: return "body";
    case LayerRole::shortcut: return "shortcut";
    case LayerRole::head: return "head";
  }
  return "unknown";
}

std::optional<LayerRole> layer_role_from_string(const std::string& name) {
  for (LayerRole r : kAllLayerRoles)
    if (name == to_string(r)) return r;
  return std::nullopt;
}

std::optional<QuantTarget> quant_target_from_string(const std::string& name) {
  for (QuantTarget t : kAllQuantTargets)
    if (name == to_string(t)) return t;
  return std::nullopt;
}

}  // namespace qsdk
