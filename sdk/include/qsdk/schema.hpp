// qsdk/schema.hpp - option schemas bound to plain options structs.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/error.hpp>
#include <qsdk/export.hpp>
#include <qsdk/kind.hpp>
#include <qsdk/value.hpp>

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace qsdk {

/// The type of one option.
enum class FieldType {
  boolean,      ///< true / false
  integer,      ///< 64-bit integer
  floating,     ///< double (integers are accepted and converted)
  string,       ///< free text
  enumeration,  ///< a string from a fixed set (FieldSpec::allowed)
  list,         ///< array of FieldSpec::element
  component,    ///< nested table with `type = "<name>"` of FieldSpec::component_kind
};

/// Name of a field type ("integer", "list of float", ...).
QSDK_API std::string to_string(FieldType type);

/// Description of one option: everything `qhost describe` prints and the
/// validator checks.
struct QSDK_API FieldSpec {
  std::string name;                  ///< key in the TOML table
  FieldType type = FieldType::string;  ///< value type
  FieldType element = FieldType::string;  ///< element type when type == list
  std::string doc;                   ///< one line
  Value default_value;               ///< none => required
  bool required = false;             ///< must be given in the TOML
  std::optional<double> min;         ///< lower bound (numbers, list elements)
  std::optional<double> max;         ///< upper bound
  bool min_exclusive = false;        ///< `min` itself is not allowed (x > min)
  bool max_exclusive = false;        ///< `max` itself is not allowed (x < max)
  std::vector<std::string> allowed;  ///< allowed strings (enumeration)
  Kind component_kind = Kind::quantizer;  ///< kind of a nested component
  /// A filesystem path (string, or list of strings): the host makes a
  /// relative value absolute against the folder of the TOML file that wrote
  /// it, so components only ever see absolute paths (or "").
  bool path = false;

  /// Whether number `x` is within the bounds (NaN never is).
  bool in_range(double x) const;
  /// The bounds in interval notation: "[1, 8]", "(0, 1]", ">= 0", "> 0",
  /// "<= 1", "< 1"; "" when unbounded.
  std::string range_text() const;
};

/// Type-erased schema: a summary plus the fields in declaration order.
struct QSDK_API SchemaInfo {
  std::string summary;            ///< one line describing the component
  std::vector<FieldSpec> fields;  ///< options in declaration order

  /// The field called `name`, or nullptr.
  const FieldSpec* find(const std::string& name) const;
  /// Checks the schema itself (unique names, defaults inside ranges and
  /// allowed sets); throws qsdk::Error(plugin) naming the component.
  void check(const std::string& component_key) const;
  /// A table with every default filled in (required fields left out).
  Table defaults() const;
};

namespace detail {
template <class M>
inline constexpr bool kUnsupportedField = false;
/// How an option type maps to TOML. The supported member types are the
/// specialisations below: bool, int64_t, double, std::string, std::vector of
/// those, and qsdk::Table (a nested component, via Schema::component()).
/// Enum members are bound by the field() overload that takes their names
/// (EnumNames), not through a traits specialisation.
template <class M>
struct FieldTraits {
  static_assert(kUnsupportedField<M>,
                "qsdk::Schema::field(): unsupported option member type. Use bool, int64_t (not int), double (not "
                "float), std::string, std::vector<bool | int64_t | double | std::string>, qsdk::Table through "
                "Schema::component(), or an enum with its names as field()'s fourth argument "
                "(.field(\"mode\", &T::mode, \"doc\", {{\"fast\", Mode::fast}, ...})); restrict strings to a set "
                "with .one_of({...}).");
  static constexpr FieldType type = FieldType::string;
  static Value to_value(const M&) { return Value(); }
  static M from_value(const Value&) { return M{}; }
};
template <>
struct FieldTraits<bool> {
  static constexpr FieldType type = FieldType::boolean;
  static Value to_value(bool v) { return Value(v); }
  static bool from_value(const Value& v) { return v.as_bool(); }
};
template <>
struct FieldTraits<int64_t> {
  static constexpr FieldType type = FieldType::integer;
  static Value to_value(int64_t v) { return Value(v); }
  static int64_t from_value(const Value& v) { return v.as_int(); }
};
template <>
struct FieldTraits<double> {
  static constexpr FieldType type = FieldType::floating;
  static Value to_value(double v) { return Value(v); }
  static double from_value(const Value& v) { return v.as_double(); }
};
template <>
struct FieldTraits<std::string> {
  static constexpr FieldType type = FieldType::string;
  static Value to_value(const std::string& v) { return Value(v); }
  static std::string from_value(const Value& v) { return v.as_string(); }
};
template <class E>
struct FieldTraits<std::vector<E>> {
  static constexpr FieldType type = FieldType::list;
  static constexpr FieldType element = FieldTraits<E>::type;
  static Value to_value(const std::vector<E>& v) {
    List out;
    for (const auto& e : v) out.push_back(FieldTraits<E>::to_value(e));
    return Value(std::move(out));
  }
  static std::vector<E> from_value(const Value& v) {
    std::vector<E> out;
    for (const auto& e : v.as_list()) out.push_back(FieldTraits<E>::from_value(e));
    return out;
  }
};
template <>
struct FieldTraits<Table> {
  static constexpr FieldType type = FieldType::component;
  static Value to_value(const Table& v) { return Value(v); }
  static Table from_value(const Value& v) { return v.as_table(); }
};
/// `"a", "b"` for an enum option's allowed names (error messages).
inline std::string quoted_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}
}  // namespace detail

/// The TOML spellings of an enum option and the values they bind to, in the
/// order `qhost describe` and error messages list them. Several spellings may
/// bind the same value; the first one naming the default is its spelling.
template <class E>
using EnumNames = std::vector<std::pair<std::string, E>>;

/// The first TOML spelling of `value` in `names` (for messages), "" when it has none.
template <class E>
std::string enum_spelling(const EnumNames<E>& names, E value) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  return "";
}

/// A schema bound to an options struct `T` through member pointers, so names,
/// types and defaults have one source of truth (defaults come from `T{}`).
///
/// Example:
/// ```
/// struct LsqOptions {
///   int64_t bits = 2;
///   std::string quant_group = "channel";
///   static qsdk::Schema<LsqOptions> schema() {
///     return qsdk::Schema<LsqOptions>("Learned step-size quantization")
///         .field("bits", &LsqOptions::bits, "bit width").range(1, 8)
///         .field("quant_group", &LsqOptions::quant_group, "grouping")
///         .one_of({"layer", "channel"});
///   }
/// };
/// ```
/// An enum member is bound with its spellings, so hot code compares enums,
/// not strings:
/// ```
/// enum class GradType { none, ste, ste_scale };
/// struct GradOptions {
///   GradType grad_type = GradType::none;
///   static qsdk::Schema<GradOptions> schema() {
///     return qsdk::Schema<GradOptions>("surrogate gradients")
///         .field("grad_type", &GradOptions::grad_type, "surrogate gradient",
///                {{"none", GradType::none}, {"STE", GradType::ste}, {"STE-scale", GradType::ste_scale}});
///   }
/// };
/// ```
template <class T>
class Schema {
 public:
  /// A schema with a one-line summary and no fields.
  explicit Schema(std::string summary) { info_.summary = std::move(summary); }

  /// Binds option `name` to `T::*member`; its default is the member's value in `T{}`.
  template <class M>
  Schema& field(std::string name, M T::*member, std::string doc) {
    using Traits = detail::FieldTraits<std::decay_t<M>>;
    FieldSpec spec;
    spec.name = std::move(name);
    spec.type = Traits::type;
    if constexpr (Traits::type == FieldType::list) spec.element = Traits::element;
    spec.doc = std::move(doc);
    spec.default_value = Traits::to_value(T{}.*member);
    info_.fields.push_back(std::move(spec));
    setters_.push_back([member](T& target, const Value& v) { target.*member = Traits::from_value(v); });
    return *this;
  }

  /// Binds option `name` to a member that `T` inherits from a base struct `B`
  /// (e.g. options shared by a family of methods), without a cast.
  template <class M, class B, std::enable_if_t<!std::is_same_v<B, T> && std::is_base_of_v<B, T>, int> = 0>
  Schema& field(std::string name, M B::*member, std::string doc) {
    return field(std::move(name), static_cast<M T::*>(member), std::move(doc));
  }

  /// Binds enum option `name` to `T::*member`: an enumeration (FieldType::enumeration)
  /// whose allowed strings are the spellings in `names`, in that order, so the
  /// validator and `qhost describe` list them. The default is the spelling of
  /// `T{}.*member`, which must be among `names` (else qsdk::Error(plugin)).
  /// bind() turns a spelling into its value; any other string is a
  /// qsdk::Error(config) about `name` listing the allowed spellings. Do not
  /// follow it with one_of(): the names are the allowed set.
  template <class E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  Schema& field(std::string name, E T::*member, std::string doc, EnumNames<E> names) {
    FieldSpec spec;
    spec.name = std::move(name);
    spec.type = FieldType::enumeration;
    spec.doc = std::move(doc);
    const E fallback = T{}.*member;
    for (const auto& [spelling, value] : names) {
      spec.allowed.push_back(spelling);
      if (spec.default_value.is_none() && value == fallback) spec.default_value = Value(spelling);
    }
    if (spec.default_value.is_none())
      throw Error(ErrorCategory::plugin, "",
                  "bad schema: enum option '" + spec.name + "' has a default (T{}) with no name among " +
                      detail::quoted_names(spec.allowed));
    setters_.push_back(
        [member, names = std::move(names), key = spec.name, allowed = spec.allowed](T& target, const Value& v) {
          const std::string& s = v.as_string();
          for (const auto& [spelling, value] : names)
            if (spelling == s) {
              target.*member = value;
              return;
            }
          config_error(key, Value(s).to_string() + " is not one of " + detail::quoted_names(allowed),
                       "allowed values: " + detail::quoted_names(allowed));
        });
    info_.fields.push_back(std::move(spec));
    return *this;
  }

  /// The enum field() for a member that `T` inherits from a base struct `B`.
  template <class E, class B,
            std::enable_if_t<std::is_enum_v<E> && !std::is_same_v<B, T> && std::is_base_of_v<B, T>, int> = 0>
  Schema& field(std::string name, E B::*member, std::string doc, EnumNames<E> names) {
    return field(std::move(name), static_cast<E T::*>(member), std::move(doc), std::move(names));
  }

  /// Binds a nested component table (`{ type = "...", ... }`) of kind `kind`.
  Schema& component(std::string name, Table T::*member, Kind kind, std::string doc) {
    field(std::move(name), member, std::move(doc));
    info_.fields.back().component_kind = kind;
    return *this;
  }

  /// Restricts the last field (or its list elements) to [lo, hi] (combine
  /// greater_than/less_than with at_least/at_most for half-open intervals).
  Schema& range(double lo, double hi) {
    last().min = lo;
    last().max = hi;
    last().min_exclusive = last().max_exclusive = false;
    return *this;
  }
  /// Restricts the last field (or its list elements) to >= lo.
  Schema& at_least(double lo) {
    last().min = lo;
    last().min_exclusive = false;
    return *this;
  }
  /// Restricts the last field (or its list elements) to > lo (e.g. a step
  /// size that must be positive: greater_than(0)).
  Schema& greater_than(double lo) {
    last().min = lo;
    last().min_exclusive = true;
    return *this;
  }
  /// Restricts the last field (or its list elements) to <= hi.
  Schema& at_most(double hi) {
    last().max = hi;
    last().max_exclusive = false;
    return *this;
  }
  /// Restricts the last field (or its list elements) to < hi.
  Schema& less_than(double hi) {
    last().max = hi;
    last().max_exclusive = true;
    return *this;
  }
  /// Restricts the last string field to `allowed`, making it an enumeration.
  Schema& one_of(std::vector<std::string> allowed) {
    if (last().type == FieldType::string) last().type = FieldType::enumeration;
    if (last().type == FieldType::list && last().element == FieldType::string)
      last().element = FieldType::enumeration;
    last().allowed = std::move(allowed);
    return *this;
  }
  /// Marks the last string field (or list of strings) as a filesystem path,
  /// resolved relative to the TOML file that names it (FieldSpec::path).
  Schema& path() {
    last().path = true;
    return *this;
  }
  /// Makes the last field required (its struct default is not used).
  Schema& required() {
    last().required = true;
    last().default_value = Value();
    return *this;
  }

  /// The type-erased description.
  const SchemaInfo& info() const { return info_; }

  /// Builds a `T` from a validated table: every bound key present in `table`
  /// overrides the struct default. Throws qsdk::Error(config) on a type mismatch.
  T bind(const Table& table) const {
    T out{};
    for (size_t i = 0; i < info_.fields.size(); ++i) {
      auto it = table.find(info_.fields[i].name);
      if (it == table.end() || it->second.is_none()) continue;
      try {
        setters_[i](out, it->second);
      } catch (const std::bad_variant_access&) {
        config_error(info_.fields[i].name,
                     "has type " + std::string(to_string(it->second.type())) + ", expected " +
                         to_string(info_.fields[i].type));
      }
    }
    return out;
  }

 private:
  FieldSpec& last() {
    if (info_.fields.empty()) throw Error(ErrorCategory::plugin, "", "schema modifier used before any field");
    return info_.fields.back();
  }
  SchemaInfo info_;
  std::vector<std::function<void(T&, const Value&)>> setters_;
};

}  // namespace qsdk
