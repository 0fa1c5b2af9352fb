// quant_policy.hpp - `[quant]` as a typed policy: the one reader of its grammar
// (docs/CONTRACTS.md, docs/methods.md#which-layers-are-quantized). The layer
// factory, the schedule's quantizer changes and their rebuild all work on a
// QuantPolicy; role and target names come from the SDK enums (qsdk/roles.hpp).
#pragma once

#include <qsdk/roles.hpp>
#include <qsdk/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qhost {

/// What the policy puts on one tensor: nullopt = full precision, else the
/// quantizer's component table (with `type`).
using QuantizerChoice = std::optional<qsdk::Table>;

/// What one `[[quant.override]]` entry says for one target.
struct OverrideChoice {
  QuantizerChoice choice;            ///< nullopt = "none"
  bool merged_onto_default = false;  ///< the entry's table had no `type`: merged onto `[quant.<target>]`
  std::vector<std::string> written;  ///< with merged_onto_default: the options the entry named itself
};

/// One `[[quant.override]]` entry.
struct QuantOverride {
  std::vector<qsdk::LayerRole> roles;  ///< match.role (empty = any role)
  std::vector<std::string> paths;      ///< match.path globs (empty = any path); '*' also crosses dots
  std::optional<OverrideChoice> weight, activation, output;  ///< per target; unset = untouched

  /// The entry's choice for `target` (unset = untouched).
  const std::optional<OverrideChoice>& at(qsdk::QuantTarget target) const;
  /// The entry's choice for `target` (unset = untouched).
  std::optional<OverrideChoice>& at(qsdk::QuantTarget target);
  /// True when the layer matches both the role and the path conditions.
  bool matches(const std::string& path, qsdk::LayerRole role) const;
};

/// A quantizer option named relative to `[quant]`: "<target>.<option>" (the
/// `[quant.<target>]` default) or "override[i].<target>.<option>" (one entry).
struct QuantKey {
  int64_t override_index = -1;  ///< -1: the default
  qsdk::QuantTarget target = qsdk::QuantTarget::weight;
  std::string option;

  /// A parsed key, or a message and a hint saying what is wrong with it.
  struct Parsed;
  /// Parses `key` (without the leading "quant.").
  static Parsed parse(const std::string& key);
  /// True when the dotted configuration key `dotted` is under `[quant]`.
  static bool names_quant(const std::string& dotted) { return dotted.rfind("quant.", 0) == 0; }
  /// "override[1].activation.bits" or "activation.bits".
  std::string str() const;
};

struct QuantKey::Parsed {
  std::optional<QuantKey> key;  ///< set when the key is well formed
  std::string message, hint;    ///< why it is not
};

/// The parsed `[quant]` policy.
struct QuantPolicy {
  bool padding_after_quant = false;  ///< quantize activations before zero padding
  bool real_skip = false;            ///< shortcut layers stay full precision
  bool quantize_stem = false;        ///< quantize the stem (FP by default)
  bool quantize_head = false;        ///< quantize the classifier (FP by default)
  QuantizerChoice weight, activation, output;  ///< the defaults
  std::vector<QuantOverride> overrides;         ///< in file order

  /// Parses a `[quant]` table (as written or as validated); throws
  /// qsdk::Error(config) naming the key (e.g. "quant.override[1].match.role")
  /// on a malformed entry. An override table without `type` is merged onto the
  /// default of its target here.
  static QuantPolicy from_table(const qsdk::Table& quant);

  /// The default for `target`.
  const QuantizerChoice& default_for(qsdk::QuantTarget target) const;
  /// The default for `target`.
  QuantizerChoice& default_for(qsdk::QuantTarget target);
  /// True when any tensor may be quantized.
  bool quantizes_anything() const { return weight || activation || output || !overrides.empty(); }

  /// The quantizer table for a layer's tensor, or nullopt: the default (left
  /// full precision for the stem, the head and real-skip shortcuts unless the
  /// flags say otherwise), then each matching override in order (last wins).
  QuantizerChoice resolve(const std::string& path, qsdk::LayerRole role, qsdk::QuantTarget target) const;

  /// Sets one quantizer option (a schedule change) and returns its previous
  /// value (none when it was not set). Only the named table changes: the
  /// validated schedule lists the overrides that inherit a changed default as
  /// keys of their own (check_schedule). Throws qsdk::Error(runtime) when the
  /// key names no existing quantizer table.
  qsdk::Value set_option(const QuantKey& key, const qsdk::Value& value);
};

}  // namespace qhost
