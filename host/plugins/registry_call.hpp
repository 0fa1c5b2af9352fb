// registry_call.hpp - call_plugin(): re-throws plugin errors with context.
#pragma once

#include "plugins/registry.hpp"

#include <c10/util/Exception.h>
#include <qsdk/error.hpp>

#include <exception>
#include <string>

namespace qhost {

/// "quantizer/lsq (plugin 'lsq' 1.0.0, /path/libqplug_lsq.so)"
std::string component_context(const Component& component);

template <class Fn>
auto call_plugin(const Component& component, Fn&& fn) -> decltype(fn()) {
  // what() is copied into host-owned strings right here, so no exception
  // object made by plugin code outlives this frame.
  try {
    return fn();
  } catch (const qsdk::Error& e) {
    std::string place = component_context(component);
    if (!e.place().empty()) place += ": " + e.place();
    throw qsdk::Error(e.category(), place, e.message(), e.hint());
  } catch (const c10::Error& e) {
    throw qsdk::Error(qsdk::ErrorCategory::plugin, component_context(component),
                      std::string("LibTorch error: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::plugin, component_context(component), e.what());
  } catch (...) {
    throw qsdk::Error(qsdk::ErrorCategory::plugin, component_context(component),
                      "unknown exception (not derived from std::exception)");
  }
}

}  // namespace qhost
