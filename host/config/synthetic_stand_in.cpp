// synthetic_stand_in.cpp - see synthetic_stand_in.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "config/synthetic_stand_in.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <array>
#include <optional>

namespace qhost {
namespace {

using qsdk::Table;
using qsdk::Value;

const Value* find(const Table& t, const std::string& key) {
  auto it = t.find(key);
  return it == t.end() ? nullptr : &it->second;
}

// An integer option as written (TOML integer, or a float holding one).
std::optional<int64_t> integer(const Table& t, const std::string& key) {
  const Value* v = find(t, key);
  if (!v) return std::nullopt;
  if (v->type() == Value::Type::integer) return v->as_int();
  if (v->type() == Value::Type::floating) {
    const double d = v->as_double();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string string_or(const Table& t, const std::string& key, const std::string& fallback) {
  const Value* v = find(t, key);
  return v && v->type() == Value::Type::string ? v->as_string() : fallback;
}

[[noreturn]] void cannot_tell(const std::string& where, const std::string& what, const std::string& key,
                              const std::string& reader) {
  throw qsdk::Error(qsdk::ErrorCategory::config, where + ": data." + key,
                    "--synthetic cannot tell the " + what + " of dataset/" + reader + " without its files",
                    "give it: --synthetic --set data." + key + "=N");
}

}  // namespace

SyntheticStandIn synthetic_stand_in(const Table& data, const std::string& where) {
  const std::string reader = string_or(data, "type", "");
  SyntheticStandIn out;
  Table& s = out.data;
  s["type"] = Value(std::string("synthetic"));
  static const std::array<const char*, 12> kept = {"batch_size", "eval_batch_size", "workers",    "prefetch",
                                                   "drop_last",  "num_samples",     "num_classes", "channels",
                                                   "height",     "width",           "signal",      "seed"};
  for (const char* key : kept)
    if (const Value* v = find(data, key)) s[key] = *v;
  if (reader == "synthetic") {
    out.description = "already synthetic";
    return out;
  }

  // Channels: one normalisation entry per channel.
  if (!find(s, "channels")) {
    const Value* mean = find(data, "mean");
    const int64_t channels =
        mean && mean->type() == Value::Type::list && !mean->as_list().empty() ? mean->as_list().size() : 3;
    s["channels"] = Value(channels);
  }
  // Side: the crop size, else the reader's fixed native side.
  if (!find(s, "height") || !find(s, "width")) {
    int64_t side = integer(data, "size").value_or(0);
    if (side <= 0) {
      if (reader == "idx")
        side = 28;  // MNIST / Fashion-MNIST
      else if (reader == "cifar")
        side = 32;
      else
        cannot_tell(where, "image side", "size", reader);
    }
    if (!find(s, "height")) s["height"] = Value(side);
    if (!find(s, "width")) s["width"] = Value(side);
  }
  // Classes.
  std::string classes_note;
  if (!find(s, "num_classes")) {
    int64_t classes = 0;
    if (reader == "cifar") {
      const bool hundred = string_or(data, "variant", "cifar10") == "cifar100";
      classes = !hundred ? 10 : string_or(data, "label", "fine") == "coarse" ? 20 : 100;
    } else if (reader == "imagefolder") {
      classes = 1000;
      classes_note = " (ImageNet's, assumed for imagefolder: --set data.num_classes=N for another)";
    } else {
      cannot_tell(where, "class count", "num_classes", reader);
    }
    s["num_classes"] = Value(classes);
  }
  if (!find(s, "num_samples")) {
    const int64_t batch = integer(data, "batch_size").value_or(128);
    const int64_t eval_batch = integer(data, "eval_batch_size").value_or(0);
    s["num_samples"] = Value(4 * std::max(batch, eval_batch));
  }
  out.description = std::to_string(s["channels"].as_int()) + "x" + std::to_string(s["height"].as_int()) + "x" +
                    std::to_string(s["width"].as_int()) + ", " + std::to_string(s["num_classes"].as_int()) +
                    " classes" + classes_note + ", " + std::to_string(s["num_samples"].as_int()) +
                    " samples per split, in place of dataset/" + reader;
  return out;
}

}  // namespace qhost
