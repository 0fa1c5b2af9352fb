#include <qsdk/value.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace qsdk {

double Value::as_double() const {
  if (type() == Type::integer) return static_cast<double>(as_int());
  return std::get<double>(data_);
}

namespace {
// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes
// there are not one (overlong forms, surrogates and values past U+10FFFF
// included): TOML text must be valid UTF-8.
size_t utf8_length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// A TOML basic string that reads back as `s`: every control character is
// escaped (a raw CR, TAB or U+0001 would make resolved.toml, and the copy in
// every checkpoint, unreadable), and a byte that is not valid UTF-8 becomes
// U+FFFD, since TOML cannot hold it at all.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\b': out += "\\b"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\f': out += "\\f"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
      ++i;
      continue;
    }
    const size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\\uFFFD";
      ++i;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  return out + "\"";
}

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest %g text that round-trips (1e-310 rather than the 15-digit
  // 9.99999999999997e-311 a fixed precision gives for a subnormal), always with
  // a '.' or exponent so TOML reads it back as a float. strtod, not stod: stod
  // throws out_of_range for subnormals.
  std::string s;
  char buf[40];
  for (int digits = 1; digits <= std::numeric_limits<double>::max_digits10; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    s = buf;
    if (std::strtod(buf, nullptr) == v) break;
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
