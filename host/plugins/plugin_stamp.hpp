// plugin_stamp.hpp - what qhost learns about a plugin file before running any
// of its code: the stamp note read from its ELF sections, and a probe that
// runs its static initialisers in a throw-away child process.
#pragma once

#include <qsdk/plugin_abi.h>

#include <string>

namespace qhost {

/// Reads the qtool_plugin_stamp_note of the ELF shared library at `path` by
/// parsing its section headers (the file is untrusted: every offset, size and
/// count is bounds-checked against the file; nothing is mapped or executed).
/// Throws qsdk::Error(plugin) naming `path` when the file is not a 64-bit ELF
/// shared library for this machine, its section table is malformed, or it has
/// no (or more than one, or a malformed) QTOOL_PLUGIN_STAMP_SECTION. The
/// returned note has NUL-terminated `name` and `compiler`; its `size` may be
/// anything when `plugin_abi` differs from this qhost's (only magic, size and
/// plugin_abi are stable across ABIs, the rest is zeroed then).
qtool_plugin_stamp_note read_stamp_note(const std::string& path);

/// Runs dlopen(`path`) in a forked child process, which then exits without
/// running any destructor, so that a plugin whose static initialisers throw
/// (std::terminate), abort, crash or call exit() is refused with a
/// qsdk::Error(plugin) quoting the end of its stderr, instead of ending this
/// process. A child still running after `timeout_s` seconds is killed and
/// reported. A dlopen failure (missing dependency) is not reported here: the
/// loader's own dlopen reports it with its usual message.
void probe_static_initialisers(const std::string& path, const std::string& plugin, int timeout_s = 60);

}  // namespace qhost
