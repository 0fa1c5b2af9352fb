/* qsdk/plugin_abi.h - the C handshake between qhost and a plugin.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Compiles as C and C++. Reading the struct a plugin returns runs no plugin
 * code, so qhost can refuse a mismatched build before calling anything. */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on ANY change to the structs below or to the SDK's C++ interfaces. */
#define QTOOL_PLUGIN_ABI_VERSION 1u

/** Name of the one symbol qhost looks up in a plugin. */
#define QTOOL_PLUGIN_ENTRY_SYMBOL "qtool_plugin_entry_v1"

/** What a plugin (or qhost) was compiled against. Compared field by field. */
typedef struct qtool_build_stamp {
  uint32_t plugin_abi;        /**< QTOOL_PLUGIN_ABI_VERSION */
  uint32_t sdk_version;       /**< (major<<16)|(minor<<8)|patch of libqsdk */
  uint32_t torch_version;     /**< TORCH_VERSION_{MAJOR,MINOR,PATCH} packed the same way */
  uint32_t glibcxx_cxx11_abi; /**< value of _GLIBCXX_USE_CXX11_ABI, 2 when not libstdc++ */
  uint32_t torch_cuda;        /**< CUDA version LibTorch was built with (e.g. 12080), 0 = CPU */
  const char *compiler;       /**< informational, e.g. "GNU 12.2.0" */
} qtool_build_stamp;

/** Opaque: a qsdk::Registrar seen from C. */
struct qtool_registrar_handle;

/** Where a plugin's registration callback reports a failure (no exception may
 *  cross the C boundary). `set` copies the message. */
typedef struct qtool_error_sink {
  void (*set)(struct qtool_error_sink *self, const char *message);
  void *context;
} qtool_error_sink;

/** The constant description a plugin's entry returns. */
typedef struct qtool_plugin_info {
  uint32_t struct_size; /**< sizeof(qtool_plugin_info) as the plugin saw it */
  qtool_build_stamp stamp;
  const char *name;     /**< must equal the <name> in libqplug_<name>.so */
  const char *version;  /**< the plugin's own semver */
  const char *summary;  /**< one line for `qhost list` */
  /** Registers the plugin's components; called only after the stamp matched. */
  void (*register_components)(struct qtool_registrar_handle *registrar,
                              qtool_error_sink *error);
} qtool_plugin_info;

/** Signature of the entry symbol. */
typedef const qtool_plugin_info *(*qtool_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
