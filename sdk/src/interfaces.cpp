// Key functions of the SDK interfaces: their vtables and typeinfo are emitted
// here only, which is what makes dynamic_cast and catch work across plugins
// loaded with RTLD_LOCAL (see docs/plugin-contract.md#typeinfo-and-exceptions-across-libraries).
#include <qsdk/dataset.hpp>
#include <qsdk/exportable.hpp>
#include <qsdk/kind.hpp>
#include <qsdk/model.hpp>
#include <qsdk/quantizer.hpp>
#include <qsdk/registrar.hpp>
#include <qsdk/scheduler.hpp>
#include <qsdk/trick.hpp>
#include <qsdk/version.hpp>

namespace qsdk {

QuantizerImpl::~QuantizerImpl() = default;
ZeroPaddingAware::~ZeroPaddingAware() = default;
Exportable::~Exportable() = default;
LevelExportable::~LevelExportable() = default;
Conv2dLayerImpl::~Conv2dLayerImpl() = default;
LinearLayerImpl::~LinearLayerImpl() = default;
LayerFactory::~LayerFactory() = default;
ModelImpl::~ModelImpl() = default;
Scheduler::~Scheduler() = default;
Dataset::~Dataset() = default;
Trick::~Trick() = default;
Registrar::~Registrar() = default;

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::quantizer: return "quantizer";
    case Kind::model: return "model";
    case Kind::trick: return "trick";
    case Kind::scheduler: return "scheduler";
    case Kind::dataset: return "dataset";
  }
  return "unknown";
}

std::optional<Kind> kind_from_string(const std::string& name) {
  for (Kind k : kAllKinds)
    if (name == to_string(k)) return k;
  return std::nullopt;
}

std::string version_string(uint32_t packed) {
  return std::to_string(packed >> 16) + "." + std::to_string((packed >> 8) & 0xff) + "." +
         std::to_string(packed & 0xff);
}

uint32_t sdk_version() {
  return QSDK_PACK_VERSION_(QSDK_VERSION_MAJOR, QSDK_VERSION_MINOR, QSDK_VERSION_PATCH);
}

}  // namespace qsdk
