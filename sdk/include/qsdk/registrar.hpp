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

/// The one table of what each component kind is: its interface, the context
/// its constructor gets and its factory type. Registrar::add_<kind> and the
/// host's Registry::make<kind> are written once against it.
template <Kind K>
struct KindTraits;
/// A quantizer: `Impl(Options, const QuantizerContext&)`.
template <>
struct KindTraits<Kind::quantizer> {
  using Interface = QuantizerImpl;     ///< what the host calls
  using Context = QuantizerContext;    ///< what the constructor is told
  using Factory = QuantizerFactory;    ///< stored in ComponentSpec::factory
};
/// A model: `Impl(Options, const ModelContext&)`.
template <>
struct KindTraits<Kind::model> {
  using Interface = ModelImpl;     ///< what the host calls
  using Context = ModelContext;    ///< what the constructor is told
  using Factory = ModelFactory;    ///< stored in ComponentSpec::factory
};
/// A trick: `Impl(Options, const TrickContext&)`.
template <>
struct KindTraits<Kind::trick> {
  using Interface = Trick;         ///< what the host calls
  using Context = TrickContext;    ///< what the constructor is told
  using Factory = TrickFactory;    ///< stored in ComponentSpec::factory
};
/// A scheduler: `Impl(Options, const SchedulerContext&)`.
template <>
struct KindTraits<Kind::scheduler> {
  using Interface = Scheduler;         ///< what the host calls
  using Context = SchedulerContext;    ///< what the constructor is told
  using Factory = SchedulerFactory;    ///< stored in ComponentSpec::factory
};
/// A dataset: `Impl(Options, const DatasetContext&)`.
template <>
struct KindTraits<Kind::dataset> {
  using Interface = Dataset;         ///< what the host calls
  using Context = DatasetContext;    ///< what the constructor is told
  using Factory = DatasetFactory;    ///< stored in ComponentSpec::factory
};

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

  /// Registers component `Impl` of kind `K`, constructed as
  /// `Impl(Options, const KindTraits<K>::Context&)`; `Options::schema()`
  /// describes its options.
  template <Kind K, class Impl, class Options>
  void add_component(const std::string& name) {
    using Traits = KindTraits<K>;
    auto schema = Options::schema();
    add(make_spec(K, name, schema.info(),
                  typename Traits::Factory([schema](const Table& t, const typename Traits::Context& c) {
                    return std::static_pointer_cast<typename Traits::Interface>(
                        std::make_shared<Impl>(schema.bind(t), c));
                  })));
  }
  /// Registers quantizer `Impl`, constructed as `Impl(Options, const QuantizerContext&)`.
  template <class Impl, class Options>
  void add_quantizer(const std::string& name) {
    add_component<Kind::quantizer, Impl, Options>(name);
  }
  /// Registers model `Impl`, constructed as `Impl(Options, const ModelContext&)`.
  template <class Impl, class Options>
  void add_model(const std::string& name) {
    add_component<Kind::model, Impl, Options>(name);
  }
  /// Registers trick `Impl`, constructed as `Impl(Options, const TrickContext&)`.
  template <class Impl, class Options>
  void add_trick(const std::string& name) {
    add_component<Kind::trick, Impl, Options>(name);
  }
  /// Registers scheduler `Impl`, constructed as `Impl(Options, const SchedulerContext&)`.
  template <class Impl, class Options>
  void add_scheduler(const std::string& name) {
    add_component<Kind::scheduler, Impl, Options>(name);
  }
  /// Registers dataset `Impl`, constructed as `Impl(Options, const DatasetContext&)`.
  template <class Impl, class Options>
  void add_dataset(const std::string& name) {
    add_component<Kind::dataset, Impl, Options>(name);
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
