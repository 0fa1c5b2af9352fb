// qsdk/version.hpp - SDK version and the build stamp of the current compilation.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/export.hpp>
#include <qsdk/plugin_abi.h>
#include <torch/version.h>

#include <cstdint>
#include <string>

/// SDK semantic version. Plugins must be rebuilt when it changes.
#define QSDK_VERSION_MAJOR 0
#define QSDK_VERSION_MINOR 1
#define QSDK_VERSION_PATCH 0

/// CUDA version of the LibTorch this translation unit is built against
/// (0 for a CPU build). The qtool::sdk CMake target defines it.
#ifndef QTOOL_TORCH_CUDA
#define QTOOL_TORCH_CUDA 0
#endif

#ifdef _GLIBCXX_USE_CXX11_ABI
#define QSDK_CXX11_ABI_VALUE ((uint32_t)_GLIBCXX_USE_CXX11_ABI)
#else
#define QSDK_CXX11_ABI_VALUE 2u
#endif

#define QSDK_PACK_VERSION_(a, b, c) ((uint32_t)(((a) << 16) | ((b) << 8) | (c)))

/// The stamp of whatever is being compiled right now: a plugin's entry macro
/// and qhost both expand this, so a mismatch means different build settings.
#define QSDK_CURRENT_STAMP                                                        \
  qtool_build_stamp {                                                             \
    QTOOL_PLUGIN_ABI_VERSION,                                                     \
        QSDK_PACK_VERSION_(QSDK_VERSION_MAJOR, QSDK_VERSION_MINOR, QSDK_VERSION_PATCH), \
        QSDK_PACK_VERSION_(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH), \
        QSDK_CXX11_ABI_VALUE, (uint32_t)(QTOOL_TORCH_CUDA), "GNU " __VERSION__     \
  }

namespace qsdk {

/// "major.minor.patch" of a packed version number.
QSDK_API std::string version_string(uint32_t packed);

/// The SDK version libqsdk.so itself was built as (may differ from the headers
/// a stale plugin saw).
QSDK_API uint32_t sdk_version();

}  // namespace qsdk
