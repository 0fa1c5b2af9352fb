#include <qsdk/schema.hpp>

#include <algorithm>
#include <cmath>
#include <set>

namespace qsdk {

std::string to_string(FieldType type) {
  switch (type) {
    case FieldType::boolean: return "bool";
    case FieldType::integer: return "int";
    case FieldType::floating: return "float";
    case FieldType::string: return "string";
    case FieldType::enumeration: return "enum";
    case FieldType::list: return "list";
    case FieldType::component: return "component";
  }
  return "unknown";
}

const FieldSpec* SchemaInfo::find(const std::string& name) const {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

bool FieldSpec::in_range(double x) const {
  if (std::isnan(x)) return false;
  if (min && (min_exclusive ? !(x > *min) : !(x >= *min))) return false;
  if (max && (max_exclusive ? !(x < *max) : !(x <= *max))) return false;
  return true;
}

std::string FieldSpec::range_text() const {
  // Whole bounds as integers (8, not 8.0): they read as written.
  auto num = [](double v) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
    return Value(v).to_string();
  };
  if (min && max)
    return std::string(min_exclusive ? "(" : "[") + num(*min) + ", " + num(*max) + (max_exclusive ? ")" : "]");
  if (min) return std::string(min_exclusive ? "> " : ">= ") + num(*min);
  if (max) return std::string(max_exclusive ? "< " : "<= ") + num(*max);
  return "";
}

namespace {
bool in_range(const FieldSpec& f, double v) { return f.in_range(v); }
}  // namespace

void SchemaInfo::check(const std::string& component_key) const {
  std::set<std::string> seen;
  auto fail = [&](const FieldSpec& f, const std::string& msg) {
    throw Error(ErrorCategory::plugin, component_key,
                "bad schema: option '" + f.name + "' " + msg,
                "fix the plugin's Options::schema()");
  };
  for (const auto& f : fields) {
    if (f.name.empty()) throw Error(ErrorCategory::plugin, component_key, "bad schema: an option has an empty name");
    if (!seen.insert(f.name).second) fail(f, "is declared twice");
    if (f.name == "type") fail(f, "uses the reserved name 'type'");
    if (f.min && f.max && (*f.min > *f.max || (*f.min == *f.max && (f.min_exclusive || f.max_exclusive))))
      fail(f, "has an empty range " + f.range_text());
    if (f.path && f.type != FieldType::string && !(f.type == FieldType::list && f.element == FieldType::string))
      fail(f, "is marked as a path but is not a string or a list of strings");
    const Value& d = f.default_value;
    if (d.is_none()) continue;
    if ((f.type == FieldType::integer || f.type == FieldType::floating) && !in_range(f, d.as_double()))
      fail(f, "has default " + d.to_string() + " outside its range");
    if (f.type == FieldType::enumeration &&
        std::find(f.allowed.begin(), f.allowed.end(), d.as_string()) == f.allowed.end())
      fail(f, "has default " + d.to_string() + " that is not one of its allowed values");
    if (f.type == FieldType::enumeration && f.allowed.empty()) fail(f, "is an enum with no allowed values");
  }
}

Table SchemaInfo::defaults() const {
  Table out;
  for (const auto& f : fields)
    if (!f.default_value.is_none()) out[f.name] = f.default_value;
  return out;
}

}  // namespace qsdk
