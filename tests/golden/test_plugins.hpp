// A tiny Registrar for tests: dlopen()s libqplug_<name>.so from the build's
// plugin folder and captures the quantizer factories it registers.
#pragma once

#include <qsdk/registrar.hpp>

#include <map>
#include <memory>
#include <string>

namespace qtool_golden {

/// Captures the components registered by the plugins it loads.
class TestRegistrar : public qsdk::Registrar {
 public:
  void add(qsdk::ComponentSpec spec) override;

  /// Loads plugin `name` (once) from $QTOOL_PLUGIN_PATH (or the build folder);
  /// throws std::runtime_error with the reason on failure.
  void load(const std::string& name);
  /// The spec registered as quantizer `name` (loading plugin `name` if needed).
  const qsdk::ComponentSpec& quantizer(const std::string& name);
  /// Builds quantizer `name` from `options` (bound through its schema).
  std::shared_ptr<qsdk::QuantizerImpl> make(const std::string& name, const qsdk::Table& options,
                                            const qsdk::QuantizerContext& ctx);

  /// The process-wide instance (plugins are never unloaded).
  static TestRegistrar& instance();

 private:
  std::map<std::string, qsdk::ComponentSpec> specs_;
  std::map<std::string, void*> handles_;
};

/// Folder holding the built plugins.
std::string plugin_dir();

}  // namespace qtool_golden
