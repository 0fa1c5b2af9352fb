// qsdk/registrar.hpp - how a plugin registers its components.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/dataset.hpp>
#include <qsdk/export.hpp>
#include <qsdk/kind.hpp>
#include <qsdk/model.hpp>
#include <qsdk/quantizer.hpp>
#include <qsdk/scheduler.hpp>
#include <qsdk/schema.hpp>
#include <qsdk/trick.hpp>
#include <qsdk/value.hpp>

#include <functional>
#include <memory>
#include <string>
#include <variant>

namespace qsdk {

/// Context handed to trick factories.
struct QSDK_API TrickContext {
  /// Directory of the experiment file, for relative paths.
  std::string config_dir;
  /// Number of classes of the training data.
  int64_t num_classes = 0;
  /// Builds a full-precision model from a `[model]`-style table and loads the
  /// HDF5 checkpoint at `checkpoint_path` into it (host-provided; used by
  /// distillation). Throws qsdk::Error(checkpoint) when the file is missing or
  /// belongs to another model.
  std::function<std::shared_ptr<ModelImpl>(const Table& model, const std::string& checkpoint_path)>
      load_model;
};

/// Factory of a quantizer from its validated options.
using QuantizerFactory =
    std::function<std::shared_ptr<QuantizerImpl>(const Table&, const QuantizerContext&)>;
/// Factory of a model.
using ModelFactory = std::function<std::shared_ptr<ModelImpl>(const Table&, const ModelContext&)>;
/// Factory of a trick.
using TrickFactory = std::function<std::shared_ptr<Trick>(const Table&, const TrickContext&)>;
/// Factory of a scheduler.
using SchedulerFactory =
    std::function<std::shared_ptr<Scheduler>(const Table&, const SchedulerContext&)>;
/// Factory of a dataset.
using DatasetFactory = std::function<std::shared_ptr<Dataset>(const Table&, const DatasetContext&)>;

/// Everything known about one component.
struct QSDK_API ComponentSpec {
  Kind kind = Kind::quantizer;  ///< what it is
  std::string name;             ///< lower_snake name used as `type =`
  std::string summary;          ///< one line
  SchemaInfo schema;            ///< its options
  /// The factory matching `kind`.
  std::variant<QuantizerFactory, ModelFactory, TrickFactory, SchedulerFactory, DatasetFactory>
      factory;
};

/// Receives a plugin's components. The host's implementation records which
/// plugin provides each one and rejects duplicates.
///
/// Example:
/// ```
/// QSDK_PLUGIN("lsq", "1.0.0", "Learned step size quantization") {
///   registrar.add_quantizer<LsqQuantizer, LsqOptions>("lsq");
/// }
/// ```
class QSDK_API Registrar {
 public:
  virtual ~Registrar();
  /// Adds a component; throws qsdk::Error(plugin) on a duplicate or a bad schema.
  virtual void add(ComponentSpec spec) = 0;

  /// Registers quantizer `Impl`, constructed as `Impl(Options, const QuantizerContext&)`;
  /// `Options::schema()` describes its options.
  template <class Impl, class Options>
  void add_quantizer(const std::string& name) {
    auto schema = Options::schema();
    add(make_spec(Kind::quantizer, name, schema.info(),
                  QuantizerFactory([schema](const Table& t, const QuantizerContext& c) {
                    return std::static_pointer_cast<QuantizerImpl>(std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }
  /// Registers model `Impl`, constructed as `Impl(Options, const ModelContext&)`.
  template <class Impl, class Options>
  void add_model(const std::string& name) {
    auto schema = Options::schema();
    add(make_spec(Kind::model, name, schema.info(),
                  ModelFactory([schema](const Table& t, const ModelContext& c) {
                    return std::static_pointer_cast<ModelImpl>(std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }
  /// Registers trick `Impl`, constructed as `Impl(Options, const TrickContext&)`.
  template <class Impl, class Options>
  void add_trick(const std::string& name) {
    auto schema = Options::schema();
    add(make_spec(Kind::trick, name, schema.info(),
                  TrickFactory([schema](const Table& t, const TrickContext& c) {
                    return std::static_pointer_cast<Trick>(std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }
  /// Registers scheduler `Impl`, constructed as `Impl(Options, const SchedulerContext&)`.
  template <class Impl, class Options>
  void add_scheduler(const std::string& name) {
    auto schema = Options::schema();
    add(make_spec(Kind::scheduler, name, schema.info(),
                  SchedulerFactory([schema](const Table& t, const SchedulerContext& c) {
                    return std::static_pointer_cast<Scheduler>(std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }
  /// Registers dataset `Impl`, constructed as `Impl(Options, const DatasetContext&)`.
  template <class Impl, class Options>
  void add_dataset(const std::string& name) {
    auto schema = Options::schema();
    add(make_spec(Kind::dataset, name, schema.info(),
                  DatasetFactory([schema](const Table& t, const DatasetContext& c) {
                    return std::static_pointer_cast<Dataset>(std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }

 private:
  template <class F>
  static ComponentSpec make_spec(Kind kind, const std::string& name, const SchemaInfo& info, F factory) {
    ComponentSpec spec;
    spec.kind = kind;
    spec.name = name;
    spec.summary = info.summary;
    spec.schema = info;
    spec.factory = std::move(factory);
    return spec;
  }
};

}  // namespace qsdk
