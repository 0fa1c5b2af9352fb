// resolved.toml: a Value tree written back as TOML that toml++ reads to the
// same tree (tables as [headers], arrays of tables as [[headers]], values inline).
#include "config/config.hpp"

#include "config/sections.hpp"

#include <algorithm>
#include <sstream>

namespace qhost {

namespace {
using qsdk::Table;
using qsdk::Value;

std::string key_text(const std::string& k) {
  bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  return bare ? k : Value(k).to_string();
}

bool is_table_array(const Value& v) {
  if (v.type() != Value::Type::list || v.as_list().empty()) return false;
  return std::all_of(v.as_list().begin(), v.as_list().end(),
                     [](const Value& e) { return e.type() == Value::Type::table; });
}

void write_table(std::ostringstream& os, const Table& t, const std::string& header, bool array_element) {
  // Plain values first: after a sub-table header they would land in the sub-table.
  std::vector<std::string> deferred;
  if (!header.empty()) os << "\n" << (array_element ? "[[" : "[") << header << (array_element ? "]]" : "]") << "\n";
  for (const auto& [k, v] : t) {
    if (v.type() == Value::Type::table || is_table_array(v)) {
      deferred.push_back(k);
      continue;
    }
    os << key_text(k) << " = " << v.to_string() << "\n";
  }
  for (const auto& k : deferred) {
    const Value& v = t.at(k);
    std::string h = header.empty() ? key_text(k) : header + "." + key_text(k);
    if (v.type() == Value::Type::table) {
      write_table(os, v.as_table(), h, false);
    } else {
      for (const auto& e : v.as_list()) write_table(os, e.as_table(), h, true);
    }
  }
}
// Text for a `#` comment: a control character (a newline in a file name)
// would end the comment and make the rest of the line TOML, and bytes that are
// not UTF-8 make the whole file unreadable; escaped as in a TOML string.
std::string comment_text(const std::string& s) {
  const std::string quoted = Value(s).to_string();
  return quoted.substr(1, quoted.size() - 2);
}
}  // namespace

std::string to_toml_text(const Table& root, const std::vector<std::string>& section_order) {
  std::ostringstream os;
  // Top-level plain values, then sections in the given order, then the rest.
  Table plain, rest;
  for (const auto& [k, v] : root) {
    if (v.type() == Value::Type::table || is_table_array(v))
      rest[k] = v;
    else
      plain[k] = v;
  }
  write_table(os, plain, "", false);
  std::vector<std::string> order = section_order;
  for (const auto& [k, v] : rest)
    if (std::find(order.begin(), order.end(), k) == order.end()) order.push_back(k);
  for (const auto& k : order) {
    auto it = rest.find(k);
    if (it == rest.end()) continue;
    Table one{{k, it->second}};
    write_table(os, one, "", false);
  }
  return os.str();
}

std::string Config::to_toml() const {
  std::ostringstream os;
  os << "# Resolved by qhost " << QTOOL_VERSION << " from " << comment_text(origin_) << ": every default is explicit.\n";
  os << "# Run it again with: qhost run <this file>\n";
  for (const auto& p : plugin_notes_) os << "# plugin " << comment_text(p) << "\n";
  std::vector<std::string> order;
  for (const auto& s : sections()) order.push_back(s.name);
  os << to_toml_text(root_, order);
  return os.str();
}

}  // namespace qhost
