#include "train/param_groups.hpp"

#include <torch/torch.h>

#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace qhost {
namespace {
bool any_substring(const std::vector<std::string>& list, const std::string& name) {
  for (const auto& s : list)
    if (!s.empty() && name.find(s) != std::string::npos) return true;
  return false;
}
}  // namespace

bool is_small_tensor(const torch::Tensor& t) { return t.dim() <= 1 || (t.dim() == 4 && t.size(1) == 1); }

std::vector<ParamGroup> make_param_groups(const torch::nn::Module& module, const ParamGroupRules& rules) {
  // Layers whose weight is quantized: `X.quant_weight.*` exists (parameter or buffer).
  std::set<std::string> quantized_layers;
  auto note = [&](const std::string& name) {
    const auto pos = name.find(".quant_weight.");
    if (pos != std::string::npos) quantized_layers.insert(name.substr(0, pos));
    if (name.rfind("quant_weight.", 0) == 0) quantized_layers.insert("");
  };
  for (const auto& item : module.named_parameters(true)) note(item.key());
  for (const auto& item : module.named_buffers(true)) note(item.key());
  bool latent_constant = false;
  for (const auto& s : rules.custom_lr_list) latent_constant = latent_constant || s == "quant_weight";

  std::vector<ParamGroup> groups;
  for (const auto& item : module.named_parameters(true)) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    ParamGroup g;
    g.name = item.key();
    g.param = p;
    g.small = is_small_tensor(p);
    if (any_substring(rules.custom_decay_list, g.name)) g.weight_decay = rules.custom_decay;
    else if (!rules.decay_small && g.small) g.weight_decay = 0.0;
    else g.weight_decay = rules.weight_decay;
    g.lr = any_substring(rules.custom_lr_list, g.name) ? rules.custom_lr : rules.lr;
    if (latent_constant) {
      const std::string suffix = ".weight";
      const bool is_weight = g.name == "weight" ||
                             (g.name.size() > suffix.size() &&
                              g.name.compare(g.name.size() - suffix.size(), suffix.size(), suffix) == 0);
      const std::string layer = g.name == "weight" ? "" : g.name.substr(0, g.name.size() - suffix.size());
      if (is_weight && quantized_layers.count(layer) != 0) {
        g.lr = rules.custom_lr;
        g.lr_constant = true;
      }
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::string describe_param_groups(const std::vector<ParamGroup>& groups) {
  std::map<std::tuple<double, double, bool>, int> counts;
  for (const auto& g : groups) ++counts[{g.lr, g.weight_decay, g.lr_constant}];
  std::ostringstream o;
  o << groups.size() << " parameter groups:";
  for (const auto& [key, n] : counts)
    o << "\n  " << n << " x lr " << std::get<0>(key) << (std::get<2>(key) ? " (constant)" : "") << ", wd "
      << std::get<1>(key);
  return o.str();
}

}  // namespace qhost
