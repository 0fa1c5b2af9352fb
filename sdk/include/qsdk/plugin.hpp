// qsdk/plugin.hpp - the QSDK_PLUGIN macro that defines a plugin's entry point.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/plugin_abi.h>
#include <qsdk/registrar.hpp>
#include <qsdk/version.hpp>

#include <cstddef>
#include <exception>

namespace qsdk::detail {
/// Copies the NUL-terminated `src` into `dst`, truncated and zero-padded.
template <size_t N>
constexpr void copy_stamp_text(char (&dst)[N], const char* src) {
  size_t i = 0;
  for (; i + 1 < N && src && src[i]; ++i) dst[i] = src[i];
  for (; i < N; ++i) dst[i] = 0;
}
/// The stamp note of plugin `name` built with `stamp` (a constant expression,
/// so the note is plain bytes in the file and no code builds it).
constexpr qtool_plugin_stamp_note make_stamp_note(const char* name, const qtool_build_stamp& stamp) {
  qtool_plugin_stamp_note n{};
  for (size_t i = 0; i < sizeof(n.magic); ++i) n.magic[i] = QTOOL_PLUGIN_STAMP_MAGIC[i];
  n.size = sizeof(qtool_plugin_stamp_note);
  n.plugin_abi = stamp.plugin_abi;
  n.sdk_version = stamp.sdk_version;
  n.torch_version = stamp.torch_version;
  n.glibcxx_cxx11_abi = stamp.glibcxx_cxx11_abi;
  n.torch_cuda = stamp.torch_cuda;
  copy_stamp_text(n.name, name);
  copy_stamp_text(n.compiler, stamp.compiler);
  return n;
}
}  // namespace qsdk::detail

#if defined(__has_attribute)
#if __has_attribute(retain)
#define QSDK_STAMP_RETAIN_ , retain
#endif
#endif
#ifndef QSDK_STAMP_RETAIN_
#define QSDK_STAMP_RETAIN_
#endif

/// Puts the stamp note of plugin NAME built with STAMP (a qtool_build_stamp)
/// into the QTOOL_PLUGIN_STAMP_SECTION section, where qhost reads it from the
/// file before loading the library. QSDK_PLUGIN expands it; use it directly
/// only with a hand-written entry point (as the loader's test fixtures do).
#define QSDK_PLUGIN_STAMP_NOTE(NAME, STAMP)                                                   \
  static_assert(sizeof(NAME) <= QTOOL_PLUGIN_STAMP_TEXT, "plugin name too long for the stamp"); \
  static constexpr qtool_plugin_stamp_note qsdk_plugin_stamp_note_                           \
      __attribute__((section(QTOOL_PLUGIN_STAMP_SECTION), used QSDK_STAMP_RETAIN_)) =          \
          ::qsdk::detail::make_stamp_note(NAME, STAMP)

/// Defines the plugin's C entry `qtool_plugin_entry_v1` and its stamp note
/// (QSDK_PLUGIN_STAMP_NOTE), and opens the body of its registration function,
/// in which `registrar` (a qsdk::Registrar&) is in scope. The stamp is filled
/// from the headers the plugin is compiled with, and every exception is caught
/// so none crosses the C boundary. NAME is at most 63 bytes.
///
/// Example:
/// ```
/// QSDK_PLUGIN("lsq", "1.0.0", "Learned step size quantization") {
///   registrar.add_quantizer<LsqQuantizer, LsqOptions>("lsq");
/// }
/// ```
#define QSDK_PLUGIN(NAME, VERSION, SUMMARY)                                                  \
  QSDK_PLUGIN_STAMP_NOTE(NAME, QSDK_CURRENT_STAMP);                                          \
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
