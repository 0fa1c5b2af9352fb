// plugin_harness.hpp - the dataset plugins of the data tests, loaded through
// the host's PluginLoader (tests/support/plugins.hpp) and built straight from
// their factories.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/registrar.hpp>

#include <memory>
#include <string>

namespace qdata_test {

/// Loads libqplug_<plugin>.so (once; never unloaded) and returns the spec of
/// dataset `name` it registered. Throws qsdk::Error on failure.
const qsdk::ComponentSpec& dataset_spec(const std::string& plugin, const std::string& name);

/// Builds dataset `name` of plugin `plugin`: schema defaults, then `options`.
std::shared_ptr<qsdk::Dataset> make_dataset(const std::string& plugin, const std::string& name,
                                            const qsdk::Table& options, bool train, uint64_t seed = 0);

}  // namespace qdata_test
