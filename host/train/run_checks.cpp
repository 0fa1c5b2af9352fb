#include "train/run_checks.hpp"

#include "config/config.hpp"

#include <qsdk/error.hpp>
#include <qsdk/value.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>

namespace qhost {
namespace {

// Every leaf of `v` as dotted key -> printed value; lists of tables ([[trick]]) entry by entry.
void flatten(const qsdk::Value& v, const std::string& key, std::map<std::string, std::string>& out) {
  if (v.type() == qsdk::Value::Type::table) {
    for (const auto& [k, child] : v.as_table()) flatten(child, key.empty() ? k : key + "." + k, out);
    return;
  }
  if (v.type() == qsdk::Value::Type::list && !v.as_list().empty() &&
      std::all_of(v.as_list().begin(), v.as_list().end(),
                  [](const qsdk::Value& e) { return e.type() == qsdk::Value::Type::table; })) {
    for (size_t i = 0; i < v.as_list().size(); ++i) flatten(v.as_list()[i], key + "[" + std::to_string(i) + "]", out);
    return;
  }
  out[key] = v.to_string();
}

std::map<std::string, std::string> flat(const std::string& text, const std::string& origin) {
  std::map<std::string, std::string> out;
  const auto config = Config::from_string(text, origin, {});  // root() refers into it
  for (const auto& [k, v] : config.root()) flatten(v, k, out);
  return out;
}

}  // namespace

std::vector<std::string> config_differences(const std::string& stored, const std::string& current,
                                            const std::string& stored_origin) {
  const auto a = flat(stored, stored_origin);
  const auto b = flat(current, "resolved configuration");
  std::vector<std::string> keys;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) keys.push_back(k);
  }
  for (const auto& [k, v] : b)
    if (!a.count(k)) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<std::string> warn_config_changes(const std::string& stored, const std::string& current,
                                             const std::string& checkpoint) {
  if (stored.empty()) return {};
  auto keys = config_differences(stored, current, checkpoint + ":/meta/resolved_toml");
  if (keys.empty()) return keys;
  std::string list;
  for (size_t i = 0; i < keys.size() && i < 20; ++i) list += (i ? ", " : "") + keys[i];
  if (keys.size() > 20) list += ", ... (" + std::to_string(keys.size()) + " keys)";
  spdlog::warn("resuming with a configuration that differs from the one {} was written with: {} (the run continues "
               "with the new values; resolved.toml records them)",
               checkpoint, list);
  return keys;
}

std::optional<std::string> first_nonfinite(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    if (p.value().defined() && p.value().is_floating_point() && !torch::isfinite(p.value()).all().item<bool>())
      return p.key();
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    if (b.value().defined() && b.value().is_floating_point() && !torch::isfinite(b.value()).all().item<bool>())
      return b.key();
  return std::nullopt;
}

}  // namespace qhost
