// qsdk/kind.hpp - the closed set of plugin component kinds.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>

#include <optional>
#include <string>

namespace qsdk {

/// What a component is; each kind has exactly one SDK interface. Keys print as
/// `kind/name`, e.g. `quantizer/lsq`.
enum class Kind {
  quantizer,  ///< qsdk::QuantizerImpl: fake-quantizes a weight or activation
  model,      ///< qsdk::ModelImpl: a classifier built through the layer factory
  trick,      ///< qsdk::Trick: training-loop hooks
  scheduler,  ///< qsdk::Scheduler: learning rate per iteration
  dataset,    ///< qsdk::Dataset: indexed, transformed samples
};

/// All kinds, in display order.
inline constexpr Kind kAllKinds[] = {Kind::quantizer, Kind::model, Kind::trick, Kind::scheduler,
                                     Kind::dataset};

/// "quantizer", "model", ...
QSDK_API const char* to_string(Kind kind);

/// Parses a kind name; nullopt when unknown.
QSDK_API std::optional<Kind> kind_from_string(const std::string& name);

}  // namespace qsdk
