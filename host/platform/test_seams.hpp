// test_seams.hpp - the single seam through which tests reach into a running
// qhost (kill a rank, stop after N epochs, crash between two writes, ...).
//
// The hooks are environment variables QTOOL_TEST_<NAME>. They are read here
// and nowhere else, and only in a build configured with QTOOL_TEST_SEAMS=ON
// (the default when QTOOL_BUILD_TESTS is ON, see host/CMakeLists.txt). A release
// build (QTOOL_BUILD_TESTS=OFF) compiles every hook out: the functions below
// report "unset", so no environment variable can kill, stop or abort it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace qhost::test_seams {

/// True when this qhost was built with QTOOL_TEST_SEAMS (test builds only).
bool enabled();

/// The value of the environment variable `QTOOL_TEST_<name>`; nullopt when it
/// is unset or empty, and always in a build without QTOOL_TEST_SEAMS.
std::optional<std::string> value(const char* name);

/// value() as an integer; `fallback` when unset (or not a number).
int64_t integer(const char* name, int64_t fallback);

}  // namespace qhost::test_seams
