// registry.hpp - every component the loaded plugins registered, keyed by kind/name.
#pragma once

#include <qsdk/registrar.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qhost {

/// Which plugin provides a component.
struct Provider {
  std::string plugin;   ///< plugin name ("lsq")
  std::string version;  ///< plugin version ("1.0.0")
  std::string path;     ///< library file

  /// "plugin 'lsq' 1.0.0 (/path/libqplug_lsq.so)"
  std::string describe() const;
};

/// One registered component with its provider.
struct Component {
  qsdk::ComponentSpec spec;  ///< kind, name, schema, factory
  Provider provider;         ///< who registered it

  /// "quantizer/lsq"
  std::string key() const;
};

/// "quantizer/lsq" for a kind and name.
std::string component_key(qsdk::Kind kind, const std::string& name);

/// The host's Registrar. A plugin's components are staged while its entry runs
/// and only committed when the whole registration succeeded, so a plugin that
/// throws half way leaves nothing behind.
class Registry : public qsdk::Registrar {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Starts staging the components of `provider` (called by the loader).
  void begin_plugin(Provider provider);
  /// Commits the staged components. Throws qsdk::Error(plugin) naming both
  /// providers if one of them is already registered.
  void commit_plugin();
  /// Drops the staged components (registration failed).
  void abort_plugin();

  /// Adds a component from the current plugin (or from the host itself when no
  /// plugin is being registered). Checks its name and schema and rejects
  /// duplicates; throws qsdk::Error(plugin).
  void add(qsdk::ComponentSpec spec) override;

  /// The component, or nullptr.
  const Component* find(qsdk::Kind kind, const std::string& name) const;
  /// The component; throws qsdk::Error(config) "unknown quantizer 'lqs'" with
  /// a did-you-mean and the known names of that kind.
  const Component& get(qsdk::Kind kind, const std::string& name) const;
  /// Names registered for `kind`, sorted.
  std::vector<std::string> names(qsdk::Kind kind) const;
  /// All components (or those of one kind), ordered by kind then name.
  std::vector<const Component*> components(std::optional<qsdk::Kind> kind = std::nullopt) const;
  /// The hint for an unknown name: "did you mean 'lsq'? known quantizers: a, b".
  std::string unknown_hint(qsdk::Kind kind, const std::string& name) const;

  /// Builds the component of kind `K` named by `options["type"]`. Schema
  /// defaults fill missing options; keys not in the schema (host keys, "type")
  /// are ignored. Anything the plugin throws is re-thrown with "quantizer/lsq
  /// (plugin 'lsq' 1.0.0, path)" in front; qsdk::Error keeps its category,
  /// other exceptions become qsdk::ErrorCategory::plugin. Instantiated for
  /// every kind in registry.cpp.
  template <qsdk::Kind K>
  std::shared_ptr<typename qsdk::KindTraits<K>::Interface> make(
      const qsdk::Table& options, const typename qsdk::KindTraits<K>::Context& context) const;
  /// make<Kind::quantizer>.
  std::shared_ptr<qsdk::QuantizerImpl> make_quantizer(const qsdk::Table& options,
                                                      const qsdk::QuantizerContext& context) const {
    return make<qsdk::Kind::quantizer>(options, context);
  }
  /// make<Kind::model>.
  std::shared_ptr<qsdk::ModelImpl> make_model(const qsdk::Table& options, const qsdk::ModelContext& context) const {
    return make<qsdk::Kind::model>(options, context);
  }
  /// make<Kind::trick>.
  std::shared_ptr<qsdk::Trick> make_trick(const qsdk::Table& options, const qsdk::TrickContext& context) const {
    return make<qsdk::Kind::trick>(options, context);
  }
  /// make<Kind::scheduler>.
  std::shared_ptr<qsdk::Scheduler> make_scheduler(const qsdk::Table& options,
                                                  const qsdk::SchedulerContext& context) const {
    return make<qsdk::Kind::scheduler>(options, context);
  }
  /// make<Kind::dataset>.
  std::shared_ptr<qsdk::Dataset> make_dataset(const qsdk::Table& options, const qsdk::DatasetContext& context) const {
    return make<qsdk::Kind::dataset>(options, context);
  }

  /// Drops every factory. Call before main returns, after everything built
  /// from plugins is destroyed: the factories' code lives in the plugins.
  void clear();

 private:
  /// Looks up options["type"] of `kind` and merges the schema defaults under options.
  std::pair<const Component*, qsdk::Table> prepare(qsdk::Kind kind, const qsdk::Table& options) const;

  std::map<std::pair<qsdk::Kind, std::string>, Component> components_;
  std::optional<Provider> current_;
  std::vector<Component> staged_;
};

/// Runs `fn` (a call into plugin code for `component`) and re-throws anything
/// it throws with the component and its provider in front.
template <class Fn>
auto call_plugin(const Component& component, Fn&& fn) -> decltype(fn());

}  // namespace qhost

#include "plugins/registry_call.hpp"
