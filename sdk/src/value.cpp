#include <qsdk/value.hpp>

#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

namespace qsdk {

double Value::as_double() const {
  if (type() == Type::integer) return static_cast<double>(as_int());
  return std::get<double>(data_);
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest text that round-trips, always with a '.' or exponent so TOML
  // reads it back as a float.
  std::ostringstream os;
  os << std::setprecision(std::numeric_limits<double>::max_digits10 - 2) << v;
  std::string s = os.str();
  if (std::stod(s) != v) {
    os.str("");
    os << std::setprecision(std::numeric_limits<double>::max_digits10) << v;
    s = os.str();
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

bool is_bare_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}
}  // namespace

std::string Value::to_string() const {
  switch (type()) {
    case Type::none: return "none";
    case Type::boolean: return as_bool() ? "true" : "false";
    case Type::integer: return std::to_string(as_int());
    case Type::floating: return format_double(std::get<double>(data_));
    case Type::string: return quote(as_string());
    case Type::list: {
      std::string out = "[";
      bool first = true;
      for (const auto& v : as_list()) {
        if (!first) out += ", ";
        out += v.to_string();
        first = false;
      }
      return out + "]";
    }
    case Type::table: {
      std::string out = "{ ";
      bool first = true;
      for (const auto& [k, v] : as_table()) {
        if (!first) out += ", ";
        out += (is_bare_key(k) ? k : quote(k)) + " = " + v.to_string();
        first = false;
      }
      return out + (first ? "}" : " }");
    }
  }
  return "";
}

const char* to_string(Value::Type type) {
  switch (type) {
    case Value::Type::none: return "none";
    case Value::Type::boolean: return "boolean";
    case Value::Type::integer: return "integer";
    case Value::Type::floating: return "float";
    case Value::Type::string: return "string";
    case Value::Type::list: return "array";
    case Value::Type::table: return "table";
  }
  return "unknown";
}

}  // namespace qsdk
