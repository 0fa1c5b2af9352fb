/* qsdk/plugin_abi.h - the C handshake between qhost and a plugin.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Compiles as C and C++. A plugin carries its build stamp twice: in the ELF
 * section QTOOL_PLUGIN_STAMP_SECTION (a qtool_plugin_stamp_note, which qhost
 * reads from the file before dlopen, so a mismatched build is refused before
 * any of its code, static initialisers included, runs) and in the struct its
 * entry returns (checked again after loading). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on ANY change to the structs below or to the SDK's C++ interfaces.
 *  2: the stamp note section; FieldSpec::path.
 *  3: QuantizerContext::role is a LayerRole (was a string). */
#define QTOOL_PLUGIN_ABI_VERSION 3u

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

/** Name of the ELF section holding a plugin's qtool_plugin_stamp_note. */
#define QTOOL_PLUGIN_STAMP_SECTION ".qtool_stamp"
/** First 8 bytes of a qtool_plugin_stamp_note (no terminating NUL). */
#define QTOOL_PLUGIN_STAMP_MAGIC "QTOOLSTP"
/** Size of the text fields of a qtool_plugin_stamp_note, NUL included. */
#define QTOOL_PLUGIN_STAMP_TEXT 64

/** The build stamp as plain bytes in the plugin file (no pointers, so no
 *  relocation is needed to read it): qhost parses the ELF section headers,
 *  finds QTOOL_PLUGIN_STAMP_SECTION and compares this with its own stamp
 *  before dlopen. `magic`, `size` and `plugin_abi` keep their offsets in every
 *  future ABI, so any qhost can say which ABI a plugin was built for. The
 *  QSDK_PLUGIN macro emits it; the section holds exactly one. */
typedef struct qtool_plugin_stamp_note {
  char magic[8];              /**< QTOOL_PLUGIN_STAMP_MAGIC */
  uint32_t size;              /**< sizeof(qtool_plugin_stamp_note) */
  uint32_t plugin_abi;        /**< as qtool_build_stamp */
  uint32_t sdk_version;       /**< as qtool_build_stamp */
  uint32_t torch_version;     /**< as qtool_build_stamp */
  uint32_t glibcxx_cxx11_abi; /**< as qtool_build_stamp */
  uint32_t torch_cuda;        /**< as qtool_build_stamp */
  char name[QTOOL_PLUGIN_STAMP_TEXT];     /**< plugin name, NUL-terminated */
  char compiler[QTOOL_PLUGIN_STAMP_TEXT]; /**< informational, NUL-terminated (truncated) */
} qtool_plugin_stamp_note;

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
