// The quantizer plugins of the golden and quant tests, loaded through the
// host's PluginLoader (tests/support/plugins.hpp) and built straight from
// their factories.
#pragma once

#include <qsdk/registrar.hpp>

#include <memory>
#include <string>

namespace qtool_golden {

/// The spec registered as quantizer `name` by plugin `name` (loaded if
/// needed; qsdk::Error on failure).
const qsdk::ComponentSpec& quantizer_spec(const std::string& name);
/// Builds quantizer `name` from `options` (bound through its schema); throws
/// std::runtime_error for an option the schema does not have.
std::shared_ptr<qsdk::QuantizerImpl> make_quantizer(const std::string& name, const qsdk::Table& options,
                                                    const qsdk::QuantizerContext& ctx);

}  // namespace qtool_golden
