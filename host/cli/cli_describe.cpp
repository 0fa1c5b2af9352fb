// `qhost list` and `qhost describe`: components, their providers and options.
#include "cli/cli.hpp"

#include "config/sections.hpp"
#include "platform/errors.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>

#include <algorithm>
#include <array>
#include <ostream>

namespace qhost {

namespace {
std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string type_text(const qsdk::FieldSpec& f) {
  using qsdk::FieldType;
  if (f.type == FieldType::list) return "list of " + qsdk::to_string(f.element);
  if (f.type == FieldType::component) return std::string(qsdk::to_string(f.component_kind));
  return qsdk::to_string(f.type);
}

std::string constraint_text(const qsdk::FieldSpec& f) {
  std::string out;
  if (!f.allowed.empty()) {
    std::vector<std::string> q;
    for (const auto& a : f.allowed) q.push_back("\"" + a + "\"");
    out = "one of " + join(q, " | ");
  } else {
    out = f.range_text();
  }
  return out.empty() ? "-" : out;
}

void print_fields(std::ostream& out, const std::vector<qsdk::FieldSpec>& fields) {
  if (fields.empty()) {
    out << "  (no options)\n";
    return;
  }
  size_t wn = 6, wt = 6, wd = 9, wc = 10;
  std::vector<std::array<std::string, 5>> rows;
  for (const auto& f : fields) {
    std::string def = f.required ? "(required)" : f.default_value.to_string();
    rows.push_back({f.name, type_text(f), def, constraint_text(f), f.doc});
    wn = std::max(wn, f.name.size() + 2);
    wt = std::max(wt, rows.back()[1].size() + 2);
    wd = std::max(wd, rows.back()[2].size() + 2);
    wc = std::max(wc, rows.back()[3].size() + 2);
  }
  out << "  " << pad("option", wn) << pad("type", wt) << pad("default", wd) << pad("allowed", wc) << "doc\n";
  for (const auto& r : rows)
    out << "  " << pad(r[0], wn) << pad(r[1], wt) << pad(r[2], wd) << pad(r[3], wc) << r[4] << "\n";
}
}  // namespace

void print_components(std::ostream& out, const Registry& registry, std::optional<qsdk::Kind> kind) {
  auto all = registry.components(kind);
  size_t wk = 0, ws = 0;
  for (const auto* c : all) {
    wk = std::max(wk, c->key().size() + 2);
    ws = std::max(ws, c->spec.summary.size() + 2);
  }
  for (const auto* c : all)
    out << pad(c->key(), wk) << pad(c->spec.summary, ws) << "[" << c->provider.plugin << " " << c->provider.version
        << "]\n";
}

void print_description(std::ostream& out, const Registry& registry, const std::string& what) {
  auto slash = what.find('/');
  if (slash == std::string::npos) {
    if (const SectionSpec* s = find_section(what)) {
      out << "[" << (s->array ? "[" : "") << s->name << (s->array ? "]" : "") << "]  " << s->host_keys.summary
          << "\nprovider: qhost\n";
      if (s->component)
        out << "holds a " << qsdk::to_string(*s->component) << " component: type = \"<name>\" plus its options ("
            << "see `qhost list --kind " << qsdk::to_string(*s->component) << "`)\n";
      out << "\nhost keys:\n";
      print_fields(out, s->host_keys.fields);
      return;
    }
    std::vector<std::string> names;
    for (const auto& s : sections()) names.push_back(s.name);
    std::string hint = did_you_mean(what, names);
    throw qsdk::Error(
        qsdk::ErrorCategory::usage, "qhost describe", "'" + what + "' is neither KIND/NAME nor a section",
        (hint.empty() ? "" : hint + " ") + "e.g. `qhost describe quantizer/lsq`; sections: " + join(names));
  }
  const std::string kind_name = what.substr(0, slash), name = what.substr(slash + 1);
  auto kind = qsdk::kind_from_string(kind_name);
  if (!kind) {
    std::vector<std::string> kinds;
    for (auto k : qsdk::kAllKinds) kinds.push_back(qsdk::to_string(k));
    std::string hint = did_you_mean(kind_name, kinds);
    throw qsdk::Error(qsdk::ErrorCategory::usage, "qhost describe", "unknown kind '" + kind_name + "'",
                      (hint.empty() ? "" : hint + " ") + "kinds: " + join(kinds));
  }
  const Component& c = registry.get(*kind, name);
  out << c.key() << "  " << c.spec.summary << "\n";
  out << "provider: " << c.provider.describe() << "\n\noptions:\n";
  print_fields(out, c.spec.schema.fields);
}

}  // namespace qhost
