// qsdk/value.hpp - a dynamically typed option value (the SDK's view of TOML).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace qsdk {

class Value;
/// An ordered list of values (a TOML array).
using List = std::vector<Value>;
/// A table of named values (a TOML table); keys sorted for stable output.
using Table = std::map<std::string, Value>;

/// One option value. The SDK does not expose the TOML library: the host turns
/// TOML into Values after validation, so plugins see checked, typed data.
class QSDK_API Value {
 public:
  /// The type of a value.
  enum class Type { none, boolean, integer, floating, string, list, table };

  /// An empty value (a missing option).
  Value() = default;
  /// A boolean.
  Value(bool v) : data_(v) {}
  /// An integer.
  Value(int64_t v) : data_(v) {}
  /// An integer (convenience for literals).
  Value(int v) : data_(static_cast<int64_t>(v)) {}
  /// A floating point number.
  Value(double v) : data_(v) {}
  /// A string.
  Value(std::string v) : data_(std::move(v)) {}
  /// A string (convenience for literals).
  Value(const char* v) : data_(std::string(v)) {}
  /// A list.
  Value(List v) : data_(std::move(v)) {}
  /// A table.
  Value(Table v) : data_(std::move(v)) {}

  /// Which alternative is held.
  Type type() const noexcept { return static_cast<Type>(data_.index()); }
  /// True when no value is held.
  bool is_none() const noexcept { return type() == Type::none; }

  /// The boolean; throws std::bad_variant_access on another type.
  bool as_bool() const { return std::get<bool>(data_); }
  /// The integer; throws on another type.
  int64_t as_int() const { return std::get<int64_t>(data_); }
  /// The number as double; integers convert.
  double as_double() const;
  /// The string; throws on another type.
  const std::string& as_string() const { return std::get<std::string>(data_); }
  /// The list; throws on another type.
  const List& as_list() const { return std::get<List>(data_); }
  /// The table; throws on another type.
  const Table& as_table() const { return std::get<Table>(data_); }
  /// The table, mutable; throws on another type.
  Table& as_table() { return std::get<Table>(data_); }

  /// TOML-like text of the value ("2", "0.5", "\"lsq\"", "[1, 2]", "{ a = 1 }").
  std::string to_string() const;

  /// Deep equality.
  bool operator==(const Value& other) const { return data_ == other.data_; }
  /// Deep inequality.
  bool operator!=(const Value& other) const { return !(*this == other); }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, List, Table> data_;
};

/// Name of a type ("integer", "string", ...).
QSDK_API const char* to_string(Value::Type type);

}  // namespace qsdk
