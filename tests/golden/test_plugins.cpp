// The quantizer plugins of the golden and quant tests (see test_plugins.hpp).
#include "test_plugins.hpp"

#include "plugins.hpp"

#include <stdexcept>

namespace qtool_golden {

const qsdk::ComponentSpec& quantizer_spec(const std::string& name) {
  return qtool_test::TestPlugins::instance().spec(qsdk::Kind::quantizer, name);
}

std::shared_ptr<qsdk::QuantizerImpl> make_quantizer(const std::string& name, const qsdk::Table& options,
                                                    const qsdk::QuantizerContext& ctx) {
  const auto& spec = quantizer_spec(name);
  for (const auto& kv : options)
    if (spec.schema.find(kv.first) == nullptr)
      throw std::runtime_error("quantizer/" + name + " has no option " + kv.first);
  return std::get<qsdk::QuantizerFactory>(spec.factory)(options, ctx);
}

}  // namespace qtool_golden
