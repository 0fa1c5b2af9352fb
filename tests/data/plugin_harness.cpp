// plugin_harness.cpp - see plugin_harness.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "plugin_harness.hpp"

#include "plugins.hpp"

#include <stdexcept>

namespace qdata_test {

const qsdk::ComponentSpec& dataset_spec(const std::string& plugin, const std::string& name) {
  return qtool_test::TestPlugins::instance().spec(qsdk::Kind::dataset, name, plugin);
}

std::shared_ptr<qsdk::Dataset> make_dataset(const std::string& plugin, const std::string& name,
                                            const qsdk::Table& options, bool train, uint64_t seed) {
  const auto& spec = dataset_spec(plugin, name);
  qsdk::Table table = spec.schema.defaults();
  for (const auto& [k, v] : options) {
    if (!spec.schema.find(k)) throw std::runtime_error("option '" + k + "' not in the schema of " + name);
    table[k] = v;
  }
  qsdk::DatasetContext ctx;
  ctx.train = train;
  ctx.seed = seed;
  return std::get<qsdk::DatasetFactory>(spec.factory)(table, ctx);
}

}  // namespace qdata_test
