// plugin_harness.hpp - loads dataset plugins with dlopen through a tiny
// Registrar that keeps their factories (independent of the host Registry).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/registrar.hpp>

#include <memory>
#include <string>

namespace qdata_test {

/// The plugin folder: $QTOOL_PLUGIN_PATH (first entry) or the build's.
std::string plugin_dir();

/// Loads libqplug_<plugin>.so (once; never unloaded) and returns the spec of
/// dataset `name` it registered. Throws std::runtime_error on failure.
const qsdk::ComponentSpec& dataset_spec(const std::string& plugin, const std::string& name);

/// Builds dataset `name` of plugin `plugin`: schema defaults, then `options`.
std::shared_ptr<qsdk::Dataset> make_dataset(const std::string& plugin, const std::string& name,
                                            const qsdk::Table& options, bool train, uint64_t seed = 0);

}  // namespace qdata_test
