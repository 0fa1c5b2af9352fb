#include "plugins/registry.hpp"

#include "platform/errors.hpp"

#include <algorithm>
#include <cctype>

namespace qhost {

namespace {
using qsdk::ErrorCategory;
using qsdk::Kind;

std::string plural(Kind kind) { return std::string(qsdk::to_string(kind)) + "s"; }

bool is_lower_snake(const std::string& s) {
  if (s.empty() || !std::islower(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Fills schema defaults under the given options; drops keys the schema does
// not know (host keys such as [data] batch_size, and "type").
qsdk::Table with_defaults(const qsdk::SchemaInfo& schema, const qsdk::Table& options) {
  qsdk::Table out = schema.defaults();
  for (const auto& [k, v] : options)
    if (schema.find(k)) out[k] = v;
  return out;
}
}  // namespace

std::string Provider::describe() const {
  if (plugin.empty()) return "qhost itself";
  return "plugin '" + plugin + "' " + version + " (" + path + ")";
}

std::string component_key(Kind kind, const std::string& name) {
  return std::string(qsdk::to_string(kind)) + "/" + name;
}

std::string Component::key() const { return component_key(spec.kind, spec.name); }

std::string component_context(const Component& component) {
  if (component.provider.plugin.empty()) return component.key();
  return component.key() + " (plugin '" + component.provider.plugin + "' " + component.provider.version + ", " +
         component.provider.path + ")";
}

void Registry::begin_plugin(Provider provider) {
  current_ = std::move(provider);
  staged_.clear();
}

void Registry::commit_plugin() {
  for (auto& c : staged_) {
    auto id = std::make_pair(c.spec.kind, c.spec.name);
    components_.emplace(id, std::move(c));
  }
  staged_.clear();
  current_.reset();
}

void Registry::abort_plugin() {
  staged_.clear();
  current_.reset();
}

void Registry::add(qsdk::ComponentSpec spec) {
  Provider provider = current_ ? *current_ : Provider{};
  std::string key = component_key(spec.kind, spec.name);
  if (!is_lower_snake(spec.name))
    throw qsdk::Error(ErrorCategory::plugin, key, "component name '" + spec.name + "' is not lower_snake_case",
                      "names are what users write as type = \"...\"; use e.g. 'my_quantizer'");
  spec.schema.check(key);
  auto same = [&](const Component& c) { return c.spec.kind == spec.kind && c.spec.name == spec.name; };
  const Component* other = find(spec.kind, spec.name);
  if (!other) {
    auto it = std::find_if(staged_.begin(), staged_.end(), same);
    if (it != staged_.end()) other = &*it;
  }
  if (other)
    throw qsdk::Error(ErrorCategory::plugin, key,
                      "is registered by both " + other->provider.describe() + " and " + provider.describe(),
                      "remove one of the two plugins from the plugin search path, or rename the component");
  Component c{std::move(spec), std::move(provider)};
  if (current_)
    staged_.push_back(std::move(c));
  else
    components_.emplace(std::make_pair(c.spec.kind, c.spec.name), std::move(c));
}

const Component* Registry::find(Kind kind, const std::string& name) const {
  auto it = components_.find({kind, name});
  return it == components_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const auto& [id, c] : components_)
    if (id.first == kind) out.push_back(id.second);
  return out;  // std::map keeps them sorted
}

std::string Registry::unknown_hint(Kind kind, const std::string& name) const {
  auto known = names(kind);
  std::string hint = did_you_mean(name, known);
  if (!hint.empty()) hint += " ";
  if (known.empty())
    hint += "no " + plural(kind) + " are registered: is the plugin search path right? (see `qhost list`)";
  else
    hint += "known " + plural(kind) + ": " + join(known);
  return hint;
}

const Component& Registry::get(Kind kind, const std::string& name) const {
  if (const Component* c = find(kind, name)) return *c;
  throw qsdk::Error(ErrorCategory::config, "", "unknown " + std::string(qsdk::to_string(kind)) + " '" + name + "'",
                    unknown_hint(kind, name));
}

std::vector<const Component*> Registry::components(std::optional<Kind> kind) const {
  std::vector<const Component*> out;
  for (Kind k : qsdk::kAllKinds) {
    if (kind && *kind != k) continue;
    for (const auto& [id, c] : components_)
      if (id.first == k) out.push_back(&c);
  }
  return out;
}

std::pair<const Component*, qsdk::Table> Registry::prepare(Kind kind, const qsdk::Table& options) const {
  auto it = options.find("type");
  if (it == options.end() || it->second.type() != qsdk::Value::Type::string)
    throw qsdk::Error(ErrorCategory::config, qsdk::to_string(kind), "component table has no string 'type'",
                      "add type = \"<name>\"; " + unknown_hint(kind, ""));
  const Component& c = get(kind, it->second.as_string());
  return {&c, with_defaults(c.spec.schema, options)};
}

template <qsdk::Kind K>
std::shared_ptr<typename qsdk::KindTraits<K>::Interface> Registry::make(
    const qsdk::Table& options, const typename qsdk::KindTraits<K>::Context& context) const {
  auto [c, table] = prepare(K, options);
  const auto* factory = std::get_if<typename qsdk::KindTraits<K>::Factory>(&c->spec.factory);
  if (!factory || !*factory)
    throw qsdk::Error(ErrorCategory::plugin, component_context(*c), "has no factory of its kind",
                      "register it with the Registrar::add_<kind> helper");
  return call_plugin(*c, [&] { return (*factory)(table, context); });
}

template std::shared_ptr<qsdk::QuantizerImpl> Registry::make<Kind::quantizer>(const qsdk::Table&,
                                                                              const qsdk::QuantizerContext&) const;
template std::shared_ptr<qsdk::ModelImpl> Registry::make<Kind::model>(const qsdk::Table&,
                                                                      const qsdk::ModelContext&) const;
template std::shared_ptr<qsdk::Trick> Registry::make<Kind::trick>(const qsdk::Table&, const qsdk::TrickContext&) const;
template std::shared_ptr<qsdk::Scheduler> Registry::make<Kind::scheduler>(const qsdk::Table&,
                                                                          const qsdk::SchedulerContext&) const;
template std::shared_ptr<qsdk::Dataset> Registry::make<Kind::dataset>(const qsdk::Table&,
                                                                      const qsdk::DatasetContext&) const;

void Registry::clear() {
  components_.clear();
  staged_.clear();
  current_.reset();
}

}  // namespace qhost
