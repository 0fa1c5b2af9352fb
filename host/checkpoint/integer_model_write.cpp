// Writing the integer model (docs/integer-model.md#layout). Codes are stored as
// code = offset + stride * u with u bit-packed: the stride takes the gaps out
// of ranges like LSQ's {-3, -1, 1, 3} or XNOR's {-1, 1}, so they pack into 2
// and 1 bits, the widths of the methods' levels.
#include "checkpoint/integer_model.hpp"

#include "checkpoint/bit_pack.hpp"
#include "quant/quant_layers.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace qhost {
namespace {

torch::Tensor scalar(int64_t v) { return torch::full({}, v, torch::kLong); }

/// Smallest bit count that holds 0..max_u.
int64_t bits_for(int64_t max_u) {
  int64_t bits = 1;
  while (bits < 62 && (int64_t{1} << bits) <= max_u) ++bits;
  return bits;
}

void add_weight(const IntegerWeight& w, NamedTensors& out) {
  const std::string dir = w.layer + "/weight/";
  const torch::Tensor c = w.codes.reshape({-1}).to(torch::kLong).contiguous();
  int64_t offset = 0, stride = 1, bits = 1;
  torch::Tensor u = c;
  torch::Tensor levels = w.levels;
  if (levels.defined()) {
    // Codes index the level table directly; the format's tables hold 2^bits
    // entries, so a method with fewer levels has its table padded with its
    // last level (an entry no code selects).
    const int64_t n = levels.size(-1);
    bits = bits_for(std::max<int64_t>(n - 1, 1));
    if (w.num_levels > 1) bits = std::max(bits, bits_for(w.num_levels - 1));
    if (bits > 8 || n < 1)
      throw qsdk::Error(qsdk::ErrorCategory::runtime, w.layer + ": quant_weight",
                        "a level table of " + std::to_string(n) + " entries",
                        "the integer model stores level tables of at most 2^8 entries");
    const int64_t full = int64_t{1} << bits;
    if (n < full) levels = torch::cat({levels, levels.narrow(-1, n - 1, 1).repeat_interleave(full - n, -1)}, -1);
  } else if (c.numel() > 0) {
    offset = c.min().item<int64_t>();
    const torch::Tensor shifted = c - offset;
    const int64_t* p = shifted.data_ptr<int64_t>();
    int64_t g = 0;
    for (int64_t i = 0; i < shifted.numel(); ++i) g = std::gcd(g, p[i]);
    stride = g > 0 ? g : 1;
    u = shifted / stride;
    bits = bits_for(u.max().item<int64_t>());
    if (w.num_levels > 1) bits = std::max(bits, bits_for(w.num_levels - 1));
  }
  if (bits > kMaxPackedBits)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, w.layer + ": quant_weight",
                      "the weight codes span more than 16 bits", "the integer model stores codes of at most 16 bits");
  out.emplace_back(dir + "codes", pack_codes(u, bits));
  out.emplace_back(dir + "shape", torch::tensor(w.codes.sizes().vec(), torch::kLong));
  out.emplace_back(dir + "bits", scalar(bits));
  out.emplace_back(dir + "offset", scalar(offset));
  out.emplace_back(dir + "stride", scalar(stride));
  out.emplace_back(dir + "axis", scalar(w.axis));
  if (levels.defined()) out.emplace_back(dir + "levels", levels.to(torch::kFloat).contiguous());
  else out.emplace_back(dir + "scale", w.scale.to(torch::kFloat).reshape({-1}).contiguous());
}

}  // namespace

std::map<std::string, std::string> layer_weight_names(const torch::nn::Module& model) {
  std::map<std::string, std::string> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const torch::nn::Module* m = item.value().get();
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    if (const auto* conv = dynamic_cast<const QuantConv2dImpl*>(m)) out[conv->module_path()] = prefix + "weight";
    else if (const auto* lin = dynamic_cast<const QuantLinearImpl*>(m)) out[lin->module_path()] = prefix + "weight";
  }
  return out;
}

void write_integer_model(const std::string& path, const IntegerModel& m) {
  CheckpointData data;
  data.meta = m.meta;
  data.meta.content = kIntegerModelContent;
  // The oldest layout that holds the file: 1 unless a threshold form needs 2.
  data.meta.content_version = 1;
  data.meta.optimizer_type.clear();
  data.model = m.floats;
  for (const auto& w : m.weights) add_weight(w, data.integer);
  for (const auto& a : m.activations) {
    const std::string dir = a.layer + "/" + qsdk::to_string(a.target) + "/";
    if (a.thresholds.defined()) {
      // Threshold form (docs/integer-model.md#activations): the tables as the quantizer gave them.
      data.meta.content_version = kIntegerModelThresholdVersion;
      data.integer.emplace_back(dir + "thresholds", a.thresholds.to(torch::kFloat).contiguous());
      data.integer.emplace_back(dir + "levels", a.levels.to(torch::kFloat).contiguous());
      data.integer.emplace_back(dir + "upper_at_ties", scalar(a.upper_at_ties ? 1 : 0));
      data.integer.emplace_back(dir + "axis", scalar(a.axis));
      continue;
    }
    data.integer.emplace_back(dir + "scale", a.scale.to(torch::kFloat).reshape({-1}).contiguous());
    data.integer.emplace_back(dir + "zero_point", scalar(a.zero_point));
    data.integer.emplace_back(dir + "qmin", scalar(a.qmin));
    data.integer.emplace_back(dir + "qmax", scalar(a.qmax));
    data.integer.emplace_back(dir + "axis", scalar(a.axis));
  }
  for (const auto& n : m.norms) {
    data.integer.emplace_back(n.layer + "/bn/scale", n.scale.to(torch::kFloat).reshape({-1}).contiguous());
    data.integer.emplace_back(n.layer + "/bn/shift", n.shift.to(torch::kFloat).reshape({-1}).contiguous());
  }
  write_checkpoint(path, data);
}

}  // namespace qhost
