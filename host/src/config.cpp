// Loading an experiment: TOML -> qsdk::Value tree plus a map from dotted key
// to source location, `extends` merging and `--set` overrides.
#include "config.hpp"

#include "errors.hpp"

#include <qsdk/error.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>

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

/// Internal: builds a Config's tree and locations (friend of Config).
class ConfigBuilder {
 public:
  using Locations = std::map<std::string, SourceLocation>;
  struct Doc {
    Table root;
    Locations locations;
  };

  static SourceLocation where(const toml::source_region& r, const std::string& fallback_file) {
    SourceLocation loc;
    loc.file = r.path ? *r.path : fallback_file;
    loc.line = static_cast<int>(r.begin.line);
    loc.column = static_cast<int>(r.begin.column);
    return loc;
  }

  static Value convert(const toml::node& node, const std::string& key, const std::string& file, Locations& locs) {
    if (auto* t = node.as_table()) {
      Table out;
      for (auto&& [k, v] : *t) {
        std::string child = key.empty() ? std::string(k.str()) : key + "." + std::string(k.str());
        // The key's own position: for `[a.b]` headers that is the header,
        // for `x = 1` the start of the line's key.
        locs[child] = where(k.source(), file);
        out[std::string(k.str())] = convert(v, child, file, locs);
      }
      return Value(std::move(out));
    }
    if (auto* a = node.as_array()) {
      List out;
      for (size_t i = 0; i < a->size(); ++i) {
        std::string child = key + "[" + std::to_string(i) + "]";
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
    Doc doc;
    try {
      toml::table t = toml::parse(text, origin);
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

  // Resolves the `extends` chain of `doc` (defined in `file`, whose folder
  // bases are relative to) and returns the merged document.
  static Doc resolve_extends(Doc doc, const std::string& file, const fs::path& dir, std::vector<std::string>& stack) {
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
      Doc base = load_file(path, stack, ext_loc);
      merge(merged.root, base.root, "", merged.locations, base.locations);
    }
    merge(merged.root, doc.root, "", merged.locations, doc.locations);
    return merged;
  }

  static Doc load_file(const std::string& path, std::vector<std::string>& stack, const SourceLocation& from) {
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(path, ec).string();
    if (std::find(stack.begin(), stack.end(), canonical) != stack.end())
      throw qsdk::Error(ErrorCategory::config, from.str(), "circular extends: " + path + " extends itself",
                        "chain: " + join(stack, " -> ") + " -> " + canonical);
    if (!fs::is_regular_file(path, ec))
      throw qsdk::Error(ErrorCategory::config, from.str(), "cannot read '" + path + "': no such file",
                        from.line ? "extends paths are relative to the file that names them" : "check the path");
    Doc doc;
    try {
      toml::table t = toml::parse_file(path);
      doc.root = convert(t, "", path, doc.locations).as_table();
    } catch (const toml::parse_error& e) {
      auto loc = where(e.source(), path);
      throw qsdk::Error(ErrorCategory::config, loc.str(), "TOML syntax error: " + std::string(e.description()));
    }
    stack.push_back(canonical);
    Doc out = resolve_extends(std::move(doc), path, fs::path(path).parent_path(), stack);
    stack.pop_back();
    return out;
  }

  static void apply_override(Config& c, const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
      throw qsdk::Error(ErrorCategory::usage, "--set " + text, "expected key=value",
                        "e.g. --set train.epochs=2 or --set quant.weight.type=lsq");
    std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
    SourceLocation loc{"--set " + text, 0, 0};
    // The value is TOML when it parses as one (2, 0.5, true, [1, 2], "s"),
    // otherwise a bare word is taken as a string.
    Value value(raw);
    try {
      toml::table t = toml::parse("v = " + raw, loc.file);
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
    Value* node = nullptr;
    Table* table = &c.root_;
    std::string path;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& part = parts[i];
      if (part.empty()) throw qsdk::Error(ErrorCategory::usage, loc.file, "empty key segment in '" + key + "'");
      bool last = i + 1 == parts.size();
      if (node && node->type() == Value::Type::list) {
        bool numeric = std::all_of(part.begin(), part.end(), ::isdigit);
        size_t idx = numeric ? std::stoul(part) : 0;
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
  auto doc = ConfigBuilder::load_file(path, stack, SourceLocation{path});
  Config c;
  c.root_ = std::move(doc.root);
  c.locations_ = std::move(doc.locations);
  c.path_ = path;
  c.origin_ = path;
  for (const auto& o : overrides) ConfigBuilder::apply_override(c, o);
  return c;
}

Config Config::from_string(const std::string& toml_text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  auto doc = ConfigBuilder::parse_text(toml_text, origin);
  std::vector<std::string> stack;
  doc = ConfigBuilder::resolve_extends(std::move(doc), origin, fs::current_path(), stack);
  Config c;
  c.root_ = std::move(doc.root);
  c.locations_ = std::move(doc.locations);
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

}  // namespace qhost
