// qsdk/export.hpp - symbol visibility macros for the qtool SDK.
// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Marks a declaration as part of libqsdk's public ABI. Interfaces and error
/// types carry it so their typeinfo is unique across dlopen'ed plugins.
#if defined(QSDK_BUILDING)
#define QSDK_API __attribute__((visibility("default")))
#else
#define QSDK_API __attribute__((visibility("default")))
#endif

/// Marks the single C entry point a plugin exports (everything else in a
/// plugin is hidden).
#define QSDK_PLUGIN_EXPORT __attribute__((visibility("default")))
