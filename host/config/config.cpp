// Loading an experiment: TOML -> qsdk::Value tree plus a map from dotted key
// to source location, `extends` merging and `--set` overrides.
#include "config/config.hpp"

#include "config/synthetic_stand_in.hpp"
#include "platform/errors.hpp"

#include <qsdk/error.hpp>

// toml++ states some conditions on its input as TOML_ASSERT_ASSUME: an abort
// in Debug builds, and __builtin_assume (undefined behaviour when false) in
// clang release builds. Hostile TOML breaks some of them (e.g. `[!x]`), and
// the parser reports the same input as a syntax error right after, so they
// are neither assertions nor assumptions here.
#include <toml++/impl/preprocessor.h>
#undef TOML_ASSERT_ASSUME
#define TOML_ASSERT_ASSUME(expr) static_assert(true)
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace fs = std::filesystem;

namespace qhost {

using qsdk::ErrorCategory;
using qsdk::List;
using qsdk::Table;
using qsdk::Value;

std::string SourceLocation::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string ConfigProblem::str() const {
  std::string out = where.str() + ": " + key + ": " + message;
  if (!hint.empty()) out += " (hint: " + hint + ")";
  return out;
}

namespace {
// Limits on what a TOML experiment may hold. Real experiments are a few KiB
// with keys a few segments deep; these bound the memory and stack a hostile
// file can make qhost (and toml++, whose parser recurses once per nesting
// level) use, and each ends in a located config error.
constexpr size_t kMaxFileBytes = 4u << 20;  // 4 MiB of TOML
constexpr size_t kMaxKeySegments = 64;      // a.b.c...: segments of one dotted key or [header]
constexpr size_t kMaxKeyLength = 1024;      // characters of the full dotted path of any value
constexpr size_t kMaxExtendsDepth = 32;     // files in one chain of `extends`

std::string position(const std::string& file, size_t line, size_t column) {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// Checks TOML text before toml++ sees it, with a small lexer that skips
// strings and comments:
// - keys of more than kMaxKeySegments dotted segments are refused (toml++
//   recurses per segment and overflows the stack near 100,000): every run of
//   text not broken by '=', ',', '{', '}', '[', ']' or a newline counts its dots,
//   which bounds the segments of any key or table header (a float has one dot);
// - a non-ASCII character outside strings and comments is refused: TOML allows
//   none there, and toml++ 3.3's whitespace test on such a character reaches
//   __builtin_unreachable() (undefined behaviour; found by tests/fuzz).
void check_key_depth(std::string_view text, const std::string& origin) {
  const char* const begin = text.data();
  size_t line = 1, col = 1, dots = 0, start_line = 0, start_col = 0;
  // A quote opens a string only where TOML's grammar allows one: a key (at a
  // line start, after a key's '.', in a table header, after '{' or an inline
  // table's ',') or a value (after '=', or a '[' or ',' of an array). A quote
  // elsewhere is a syntax error that toml++ reports, and what follows it is not
  // taken for string contents (a non-ASCII character there is refused).
  std::vector<char> open;  // '[' array, 'h' table header bracket, '{' inline table
  bool string_ok = true;   // may a string start here?
  bool in_key = true;      // a key is being read (before its '=')
  bool line_start = true;  // nothing significant yet on this line (outside any array)
  char last = '\n';        // last significant character
  auto advance = [&](size_t n) {
    for (size_t k = 0; k < n; ++k) {
      if (text[0] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
      text.remove_prefix(1);
    }
  };
  auto starts = [&](std::string_view p) { return text.substr(0, p.size()) == p; };
  // Escapes are ASCII; toml++ tests the character after a backslash for
  // whitespace, which for some non-ASCII characters is the same undefined
  // behaviour as above.
  // In a multi-line string a backslash before whitespace trims all of it,
  // newlines included, up to the next character, which toml++ tests the same way.
  auto escape = [&](bool multi_line) {
    size_t k = 1;
    if (multi_line)
      while (k < text.size() && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n')) ++k;
    if (k < text.size() && static_cast<unsigned char>(text[k]) >= 0x80)
      throw qsdk::Error(ErrorCategory::config, position(origin, line, col),
                        "invalid escape sequence: a backslash followed by a non-ASCII character (after any whitespace, in a "
                        "multi-line string)",
                        "escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX; write a backslash as \\\\");
  };
  // The grammar position after significant character `ch` (outside strings and comments).
  auto step = [&](char ch) {
    const char top = open.empty() ? 0 : open.back();
    switch (ch) {
      case '\n':
        if (open.empty() || top != '[') {  // a newline inside an array is whitespace
          open.clear();
          string_ok = in_key = line_start = true;
        }
        break;
      case '=':
        string_ok = in_key;
        in_key = false;
        break;
      case '[':
        if (!in_key && string_ok) {  // an array value
          open.push_back('[');
        } else if (line_start || (top == 'h' && last == '[')) {  // [table] or [[array of tables]]
          open.push_back('h');
        } else {
          string_ok = false;
          break;
        }
        string_ok = true;
        break;
      case ']':
        if (top == '[' || top == 'h') open.pop_back();
        string_ok = false;
        break;
      case '{':
        if (!in_key && string_ok) {
          open.push_back('{');
          string_ok = in_key = true;
        } else {
          string_ok = false;
        }
        break;
      case '}':
        if (top == '{') open.pop_back();
        string_ok = in_key = false;
        break;
      case ',':
        string_ok = top == '[' || top == '{';
        in_key = top == '{';
        break;
      case '.':
        string_ok = in_key;
        break;
      default:
        string_ok = false;  // a bare key, number, boolean, date or a closed string
    }
    if (ch != '\n') line_start = false;
    last = ch;
  };
  while (!text.empty()) {
    const char c = text[0];
    if (c == '#') {
      while (!text.empty() && text[0] != '\n') advance(1);
      continue;
    }
    const bool quote = c == '"' || c == '\'';
    if (quote && !string_ok) {
      step(c);
      advance(1);
      continue;
    }
    if (quote) step(c);  // the string closes a key part or a value
    if (starts("\"\"\"") || starts("'''")) {  // multi-line string
      const std::string_view close = text.substr(0, 3);
      const bool basic = c == '"';
      advance(3);
      while (!text.empty() && !starts(close)) {
        if (basic && text[0] == '\\') escape(true);
        advance(basic && text[0] == '\\' && text.size() > 1 ? 2 : 1);
      }
      advance(std::min<size_t>(3, text.size()));
      for (int extra = 0; extra < 2 && !text.empty() && text[0] == c; ++extra) advance(1);
    } else if (c == '"' || c == '\'') {  // one-line string (may be a quoted key segment)
      if (!dots && !start_line) start_line = line, start_col = col;
      advance(1);
      while (!text.empty() && text[0] != c && text[0] != '\n') {
        if (c == '"' && text[0] == '\\') escape(false);
        advance(c == '"' && text[0] == '\\' && text.size() > 1 && text[1] != '\n' ? 2 : 1);
      }
      if (!text.empty() && text[0] == c) advance(1);
    } else if (c == '=' || c == ',' || c == '{' || c == '}' || c == '[' || c == ']' || c == '\n') {
      dots = start_line = start_col = 0;
      step(c);
      advance(1);
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      if (text.data() == begin && starts("\xEF\xBB\xBF")) {  // a UTF-8 byte order mark
        text.remove_prefix(3);
        continue;
      }
      throw qsdk::Error(ErrorCategory::config, position(origin, line, col),
                        "non-ASCII character outside a string or comment",
                        "TOML bare keys and values are ASCII: put such text in a quoted string (\"...\")");
    } else {
      if (c != ' ' && c != '\t' && c != '\r') step(c);
      if (c != ' ' && c != '\t' && !start_line) start_line = line, start_col = col;
      if (c == '.' && ++dots >= kMaxKeySegments)
        throw qsdk::Error(ErrorCategory::config, position(origin, start_line, start_col),
                          "key with more than " + std::to_string(kMaxKeySegments) + " dotted segments",
                          "keys and table headers have at most " + std::to_string(kMaxKeySegments) +
                              " segments; real experiments need a handful");
      advance(1);
    }
  }
}

// The text of an experiment file, refusing oversized and unreadable ones.
std::string read_toml_file(const std::string& path, const SourceLocation& from) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec && size > kMaxFileBytes)
    throw qsdk::Error(ErrorCategory::config, path,
                      "file of " + std::to_string(size) + " bytes is too large for an experiment (limit " +
                          std::to_string(kMaxFileBytes) + ")",
                      "is this the right file?");
  std::ifstream f(path, std::ios::binary);
  std::string text;
  if (f) {
    text.resize(kMaxFileBytes + 1);
    f.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(f.gcount()));
  }
  if (!f && !f.eof())
    throw qsdk::Error(ErrorCategory::config, from.str(), "cannot read '" + path + "'", "check its permissions");
  if (text.size() > kMaxFileBytes)
    throw qsdk::Error(ErrorCategory::config, path,
                      "file is too large for an experiment (limit " + std::to_string(kMaxFileBytes) + " bytes)",
                      "is this the right file?");
  return text;
}

bool valid_utf8(const std::string& s) {
  // Same rules as toml++: no overlong forms, surrogates or values past U+10FFFF.
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}
}  // namespace

/// Internal: builds a Config's tree and locations (friend of Config).
class ConfigBuilder {
 public:
  using Locations = std::map<std::string, SourceLocation>;
  struct Doc {
    Table root;
    Locations locations;
    std::string file;  // the file it was read from ("" for text)
  };

  static SourceLocation where(const toml::source_region& r, const std::string& fallback_file) {
    SourceLocation loc;
    loc.file = r.path ? *r.path : fallback_file;
    loc.line = static_cast<int>(r.begin.line);
    loc.column = static_cast<int>(r.begin.column);
    return loc;
  }

  // A key path longer than kMaxKeyLength is refused where it is written: the
  // locations map holds one full path per value, so long paths cost memory
  // quadratic in their depth.
  static void check_key_length(const std::string& key, const toml::source_region& r, const std::string& file) {
    if (key.size() <= kMaxKeyLength) return;
    throw qsdk::Error(ErrorCategory::config, where(r, file).str(),
                      "key '" + key.substr(0, 60) + "...' is " + std::to_string(key.size()) +
                          " characters long (limit " + std::to_string(kMaxKeyLength) + ")",
                      "use shorter keys");
  }

  static Value convert(const toml::node& node, const std::string& key, const std::string& file, Locations& locs) {
    if (auto* t = node.as_table()) {
      Table out;
      for (auto&& [k, v] : *t) {
        std::string child = key.empty() ? std::string(k.str()) : key + "." + std::string(k.str());
        check_key_length(child, k.source(), file);
        // The key's own position: for `[a.b]` headers that is the header,
        // for `x = 1` the start of the line's key.
        locs[child] = where(k.source(), file);
        out[std::string(k.str())] = convert(v, child, file, locs);
      }
      return Value(std::move(out));
    }
    if (auto* a = node.as_array()) {
      List out;
      out.reserve(a->size());
      for (size_t i = 0; i < a->size(); ++i) {
        std::string child = key + "[" + std::to_string(i) + "]";
        check_key_length(child, (*a)[i].source(), file);
        locs[child] = where((*a)[i].source(), file);
        out.push_back(convert((*a)[i], child, file, locs));
      }
      return Value(std::move(out));
    }
    if (auto v = node.as_boolean()) return Value(v->get());
    if (auto v = node.as_integer()) return Value(static_cast<int64_t>(v->get()));
    if (auto v = node.as_floating_point()) return Value(v->get());
    if (auto v = node.as_string()) return Value(v->get());
    auto loc = where(node.source(), file);
    throw qsdk::Error(ErrorCategory::config, loc.str(), key + ": dates and times are not supported",
                      "write the value as a string");
  }

  static Doc parse_text(const std::string& text, const std::string& origin) {
    if (text.size() > kMaxFileBytes)
      throw qsdk::Error(ErrorCategory::config, origin,
                        "TOML text of " + std::to_string(text.size()) + " bytes is too large for an experiment (limit " +
                            std::to_string(kMaxFileBytes) + ")");
    check_key_depth(text, origin);
    Doc doc;
    try {
      toml::table t = toml::parse(std::string_view(text), std::string_view(origin));
      doc.root = convert(t, "", origin, doc.locations).as_table();
    } catch (const toml::parse_error& e) {
      auto loc = where(e.source(), origin);
      throw qsdk::Error(ErrorCategory::config, loc.str(), "TOML syntax error: " + std::string(e.description()));
    }
    return doc;
  }

  static void erase_under(Locations& locs, const std::string& key) {
    for (auto it = locs.begin(); it != locs.end();) {
      const std::string& k = it->first;
      bool under =
          k.size() > key.size() && k.compare(0, key.size(), key) == 0 && (k[key.size()] == '.' || k[key.size()] == '[');
      it = under ? locs.erase(it) : std::next(it);
    }
  }

  // Deep merge: tables merge key by key, anything else (arrays included) is
  // replaced by the overriding value.
  static void merge(Table& base, const Table& over, const std::string& prefix, Locations& base_locs,
                    const Locations& over_locs) {
    for (const auto& [k, v] : over) {
      std::string key = prefix.empty() ? k : prefix + "." + k;
      auto it = base.find(k);
      if (it != base.end() && it->second.type() == Value::Type::table && v.type() == Value::Type::table) {
        merge(it->second.as_table(), v.as_table(), key, base_locs, over_locs);
      } else {
        erase_under(base_locs, key);
        base[k] = v;
        for (auto l = over_locs.lower_bound(key); l != over_locs.end(); ++l) {
          const std::string& lk = l->first;
          if (lk.compare(0, key.size(), key) != 0) break;
          if (lk.size() == key.size() || lk[key.size()] == '.' || lk[key.size()] == '[') base_locs[lk] = l->second;
        }
      }
      auto own = over_locs.find(key);
      if (own != over_locs.end()) base_locs[key] = own->second;
    }
  }

  static std::vector<std::string> extends_list(const Doc& doc, const std::string& file) {
    auto it = doc.root.find("extends");
    if (it == doc.root.end()) return {};
    auto loc = doc.locations.count("extends") ? doc.locations.at("extends") : SourceLocation{file};
    std::vector<std::string> out;
    if (it->second.type() == Value::Type::string) {
      out.push_back(it->second.as_string());
    } else if (it->second.type() == Value::Type::list) {
      for (const auto& e : it->second.as_list()) {
        if (e.type() != Value::Type::string)
          throw qsdk::Error(ErrorCategory::config, loc.str(), "extends: expected a string or a list of strings",
                            "write extends = \"base.toml\" or extends = [\"a.toml\", \"b.toml\"]");
        out.push_back(e.as_string());
      }
    } else {
      throw qsdk::Error(ErrorCategory::config, loc.str(), "extends: expected a string or a list of strings",
                        "write extends = \"base.toml\" or extends = [\"a.toml\", \"b.toml\"]");
    }
    return out;
  }

  // Each file of an `extends` graph, resolved once: a base named by several
  // files (or twice by one) is parsed and merged from its first resolution,
  // so a chain of files each extending the next twice costs N loads, not 2^N.
  using Cache = std::map<std::string, Doc>;

  // Resolves the `extends` chain of `doc` (defined in `file`, whose folder
  // bases are relative to) and returns the merged document. `stack` holds the
  // files being resolved (the cycle check), `cache` those already resolved.
  static Doc resolve_extends(Doc doc, const std::string& file, const fs::path& dir, std::vector<std::string>& stack,
                             Cache& cache) {
    auto bases = extends_list(doc, file);
    SourceLocation ext_loc = doc.locations.count("extends") ? doc.locations.at("extends") : SourceLocation{file};
    doc.root.erase("extends");
    erase_under(doc.locations, "extends");
    doc.locations.erase("extends");
    if (bases.empty()) return doc;
    Doc merged;
    for (const auto& b : bases) {
      fs::path p = fs::path(b).is_absolute() ? fs::path(b) : (dir / b);
      std::string path = p.lexically_normal().string();
      const Doc& base = load_file(path, stack, ext_loc, cache);
      merge(merged.root, base.root, "", merged.locations, base.locations);
    }
    merge(merged.root, doc.root, "", merged.locations, doc.locations);
    return merged;
  }

  static const Doc& load_file(const std::string& path, std::vector<std::string>& stack, const SourceLocation& from,
                              Cache& cache) {
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(path, ec).string();
    if (std::find(stack.begin(), stack.end(), canonical) != stack.end())
      throw qsdk::Error(ErrorCategory::config, from.str(), "circular extends: " + path + " extends itself",
                        "chain: " + join(stack, " -> ") + " -> " + canonical);
    auto hit = cache.find(canonical);
    if (hit != cache.end()) return hit->second;
    if (stack.size() >= kMaxExtendsDepth)
      throw qsdk::Error(ErrorCategory::config, from.str(),
                        "extends chain deeper than " + std::to_string(kMaxExtendsDepth) + " files",
                        "chain: " + join(stack, " -> ") + " -> " + canonical);
    if (!fs::is_regular_file(path, ec))
      throw qsdk::Error(ErrorCategory::config, from.str(), "cannot read '" + path + "': no such file",
                        from.line ? "extends paths are relative to the file that names them" : "check the path");
    Doc doc = parse_text(read_toml_file(path, from), path);
    doc.file = path;
    stack.push_back(canonical);
    Doc out = resolve_extends(std::move(doc), path, fs::path(path).parent_path(), stack, cache);
    out.file = path;
    stack.pop_back();
    return cache.emplace(canonical, std::move(out)).first->second;
  }

  static void apply_override(Config& c, const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
      throw qsdk::Error(ErrorCategory::usage, "--set " + text, "expected key=value",
                        "e.g. --set train.epochs=2 or --set quant.weight.type=lsq");
    std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
    SourceLocation loc{"--set " + text, 0, 0};
    if (key.size() > kMaxKeyLength)
      throw qsdk::Error(ErrorCategory::usage, "--set " + key.substr(0, 60) + "...",
                        "key of " + std::to_string(key.size()) + " characters (limit " +
                            std::to_string(kMaxKeyLength) + ")");
    if (!valid_utf8(text))
      throw qsdk::Error(ErrorCategory::usage, loc.file, "is not valid UTF-8", "TOML keys and strings are UTF-8 text");
    // The value is TOML when it parses as one (2, 0.5, true, [1, 2], "s"),
    // otherwise a bare word is taken as a string.
    Value value(raw);
    try {
      const std::string doc = "v = " + raw;
      check_key_depth(doc, loc.file);
      toml::table t = toml::parse(std::string_view(doc), std::string_view(loc.file));
      Locations ignored;
      value = convert(*t.get("v"), "v", loc.file, ignored);
    } catch (const std::exception&) {
      value = Value(raw);
    }
    // Walk the dotted path; numeric segments index arrays.
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t dot = key.find('.', start);
      parts.push_back(key.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    if (parts.size() > kMaxKeySegments)
      throw qsdk::Error(ErrorCategory::usage, "--set " + key.substr(0, 60) + "...",
                        "key with " + std::to_string(parts.size()) + " dotted segments (limit " +
                            std::to_string(kMaxKeySegments) + ")");
    Value* node = nullptr;
    Table* table = &c.root_;
    std::string path;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& part = parts[i];
      if (part.empty()) throw qsdk::Error(ErrorCategory::usage, loc.file, "empty key segment in '" + key + "'");
      bool last = i + 1 == parts.size();
      if (node && node->type() == Value::Type::list) {
        // from_chars, not stoul: an index past 2^64 is "not a valid index",
        // not an uncaught out_of_range.
        size_t idx = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), idx);
        const bool numeric = ec == std::errc() && end == part.data() + part.size() && std::isdigit(
                                 static_cast<unsigned char>(part[0]));
        auto& list = const_cast<List&>(node->as_list());
        if (!numeric || idx >= list.size())
          throw qsdk::Error(ErrorCategory::usage, loc.file,
                            path + " is an array of " + std::to_string(list.size()) + " elements; '" + part +
                                "' is not a valid index",
                            "use " + path + ".<index>.<key>, index from 0");
        path += "[" + part + "]";
        node = &list[idx];
      } else {
        if (!table)
          throw qsdk::Error(ErrorCategory::usage, loc.file, path + " is not a table, cannot set '" + part + "' in it");
        path += (path.empty() ? "" : ".") + part;
        if (last) {
          (*table)[part] = value;
          erase_under(c.locations_, path);
          c.locations_[path] = loc;
          return;
        }
        auto it = table->find(part);
        if (it == table->end()) it = table->emplace(part, Value(Table{})).first;
        node = &it->second;
      }
      if (last) {
        *node = value;
        erase_under(c.locations_, path);
        c.locations_[path] = loc;
        return;
      }
      table = node->type() == Value::Type::table ? &node->as_table() : nullptr;
    }
  }
};

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<std::string> stack;
  ConfigBuilder::Cache cache;
  const auto& doc = ConfigBuilder::load_file(path, stack, SourceLocation{path}, cache);
  Config c;
  c.root_ = doc.root;
  c.locations_ = doc.locations;
  for (const auto& [canonical, d] : cache) c.files_.insert(d.file);
  c.path_ = path;
  c.origin_ = path;
  for (const auto& o : overrides) ConfigBuilder::apply_override(c, o);
  return c;
}

Config Config::from_string(const std::string& toml_text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  auto doc = ConfigBuilder::parse_text(toml_text, origin);
  std::vector<std::string> stack;
  ConfigBuilder::Cache cache;
  doc = ConfigBuilder::resolve_extends(std::move(doc), origin, fs::current_path(), stack, cache);
  Config c;
  c.root_ = std::move(doc.root);
  c.locations_ = std::move(doc.locations);
  for (const auto& [canonical, d] : cache) c.files_.insert(d.file);
  c.origin_ = origin;
  for (const auto& o : overrides) ConfigBuilder::apply_override(c, o);
  return c;
}

SourceLocation Config::location(const std::string& dotted_key) const {
  std::string key = dotted_key;
  while (!key.empty()) {
    auto it = locations_.find(key);
    if (it != locations_.end()) return it->second;
    size_t cut = key.find_last_of(".[");
    if (cut == std::string::npos) break;
    key = key.substr(0, cut);
  }
  return SourceLocation{origin_, 0, 0};
}

std::string Config::base_dir(const std::string& dotted_key) const {
  const SourceLocation loc = location(dotted_key);
  std::error_code ec;
  // Only a file this Config read: "--set ..." and the origin of from_string
  // text name no folder, so their paths are relative to the current one.
  fs::path dir = files_.count(loc.file) ? fs::path(loc.file).parent_path() : fs::path();
  if (dir.empty()) dir = fs::current_path(ec);  // (absolute("") is an error, not the current folder)
  fs::path abs = fs::absolute(dir, ec);
  return (ec ? dir : abs).lexically_normal().string();
}

std::string Config::resolve_path(const std::string& dotted_key, const std::string& path) const {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir(dotted_key)) / path).lexically_normal().string();
}

void Config::use_synthetic_data() {
  auto it = root_.find("data");
  if (it == root_.end() || it->second.type() != Value::Type::table)
    throw qsdk::Error(ErrorCategory::config, origin_ + ": data", "--synthetic needs a [data] section to stand in for",
                      "add [data] with at least batch_size, size and num_classes");
  auto stand_in = synthetic_stand_in(it->second.as_table(), location("data").str());
  // Keys that stay keep their place; the reader's keys go; new ones are the flag's.
  for (auto l = locations_.begin(); l != locations_.end();) {
    const std::string& key = l->first;
    const bool in_data = key.rfind("data.", 0) == 0;
    const std::string field = in_data ? key.substr(5, key.find_first_of(".[", 5) - 5) : "";
    if (in_data && !stand_in.data.count(field))
      l = locations_.erase(l);
    else
      ++l;
  }
  for (const auto& [key, v] : stand_in.data) locations_.emplace("data." + key, SourceLocation{"--synthetic"});
  it->second = Value(std::move(stand_in.data));
  // A [plugins] load list names the readers it wants: the stand-in's too.
  auto plugins = root_.find("plugins");
  if (plugins != root_.end() && plugins->second.type() == Value::Type::table) {
    auto& table = plugins->second.as_table();
    auto load = table.find("load");
    if (load != table.end() && load->second.type() == Value::Type::list && !load->second.as_list().empty()) {
      auto& names = const_cast<qsdk::List&>(load->second.as_list());  // Value has no mutable as_list
      const bool named = std::any_of(names.begin(), names.end(), [](const Value& v) {
        return v.type() == Value::Type::string && v.as_string() == "synthetic";
      });
      if (!named) names.push_back(Value("synthetic"));
    }
  }
  synthetic_note_ = stand_in.description;
}

}  // namespace qhost
