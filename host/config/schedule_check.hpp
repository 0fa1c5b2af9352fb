// schedule_check.hpp - validation of `[[schedule]]`: option changes at epoch
// boundaries (the reference's `--policy` files, docs/training.md#policy-files, as
// TOML). Only keys whose change can be applied exactly are accepted; the rest
// are rejected at `qhost check` time. train/policy_schedule.hpp applies them.
#pragma once

#include <qsdk/schema.hpp>
#include <qsdk/value.hpp>

#include <functional>
#include <string>
#include <vector>

namespace qhost {
/// Reports one problem: (dotted key, message, hint).
using ProblemSink = std::function<void(const std::string&, const std::string&, const std::string&)>;

/// Dotted keys a `[[schedule]]` entry may set (the quantizer keys as patterns).
const std::vector<std::string>& schedule_supported_keys();

/// What check_schedule needs to validate quantizer keys.
struct ScheduleQuantChecks {
  /// `[quant]` as written (before [[quant.override]] tables were merged onto
  /// their defaults); null when the file has none.
  const qsdk::Table* raw_quant = nullptr;
  /// The option schema of quantizer `type`, or null when it is unknown.
  std::function<const qsdk::SchemaInfo*(const std::string& type)> schema;
  /// Checks `value` against `field` (type, range, allowed values), reporting a
  /// problem at `key` itself; returns the normalized value, none after a problem.
  std::function<qsdk::Value(const qsdk::FieldSpec& field, const qsdk::Value& value, const std::string& key)> field;
};

/// Validates the raw `[[schedule]]` value against the otherwise resolved
/// configuration `resolved` (every default explicit): each entry is
/// `{ epoch = E, set = { "a.b" = v, ... } }`, E within [0, train.epochs), every
/// key present in `resolved`, supported, and its value of the right type and
/// range. Returns the normalized list (sorted by epoch, stable), or none after
/// a problem.
///
/// Quantizer keys (with `quant`): `quant.<weight|activation|output>.<option>`
/// changes the `[quant.<target>]` default and `quant.override[i].<target>.<option>`
/// one override entry; the option must be in that quantizer's schema and pass
/// its checks. Override rule: a `[[quant.override]]` entry whose `<target>`
/// table has no `type` of its own and does not name `<option>` inherits it from
/// the default, so the default change reaches the layers it matches; the
/// normalized entry lists that as an explicit `quant.override[i].<target>.<option>`
/// key (the resolved overrides are full tables). An override that names the
/// option or brings its own `type` keeps its value.
qsdk::Value check_schedule(const qsdk::Value& raw, const qsdk::Table& resolved, const ProblemSink& problem,
                           const ScheduleQuantChecks* quant = nullptr);

}  // namespace qhost
