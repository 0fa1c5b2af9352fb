// version_info.hpp - what this qhost was built as (its plugin stamp, versions).
#pragma once

#include <qsdk/plugin_abi.h>

#include <string>

namespace qhost {

/// The stamp every plugin must match exactly.
qtool_build_stamp host_stamp();

/// "1.13.1 (CPU)" / "2.5.1 (CUDA 12.4)" for a stamp's LibTorch fields.
std::string torch_description(const qtool_build_stamp& stamp);

/// The `qhost --version` text: qtool, SDK, plugin ABI, LibTorch, compiler.
std::string version_text();

}  // namespace qhost
