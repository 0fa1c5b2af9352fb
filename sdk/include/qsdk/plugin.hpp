// qsdk/plugin.hpp - the QSDK_PLUGIN macro that defines a plugin's entry point.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/plugin_abi.h>
#include <qsdk/registrar.hpp>
#include <qsdk/version.hpp>

#include <exception>

/// Defines the plugin's C entry `qtool_plugin_entry_v1` and opens the body of
/// its registration function, in which `registrar` (a qsdk::Registrar&) is in
/// scope. The stamp is filled from the headers the plugin is compiled with, and
/// every exception is caught so none crosses the C boundary.
///
/// Example:
/// ```
/// QSDK_PLUGIN("lsq", "1.0.0", "Learned step size quantization") {
///   registrar.add_quantizer<LsqQuantizer, LsqOptions>("lsq");
/// }
/// ```
#define QSDK_PLUGIN(NAME, VERSION, SUMMARY)                                                  \
  static void qsdk_plugin_body_(::qsdk::Registrar& registrar);                               \
  static void qsdk_plugin_register_(struct qtool_registrar_handle* handle,                   \
                                    qtool_error_sink* error) {                               \
    try {                                                                                    \
      qsdk_plugin_body_(*reinterpret_cast<::qsdk::Registrar*>(handle));                      \
    } catch (const std::exception& e) {                                                      \
      error->set(error, e.what());                                                           \
    } catch (...) {                                                                          \
      error->set(error, "unknown exception (not derived from std::exception)");              \
    }                                                                                        \
  }                                                                                          \
  extern "C" QSDK_PLUGIN_EXPORT const qtool_plugin_info* qtool_plugin_entry_v1(void) {       \
    static const qtool_plugin_info info = {sizeof(qtool_plugin_info), QSDK_CURRENT_STAMP,    \
                                           NAME,                      VERSION,               \
                                           SUMMARY,                   &qsdk_plugin_register_}; \
    return &info;                                                                            \
  }                                                                                          \
  static void qsdk_plugin_body_(::qsdk::Registrar& registrar)
