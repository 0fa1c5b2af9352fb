#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (GCC):
# configures build-asan/ (RelWithDebInfo, -fsanitize=address,undefined, no PCH
# so every object is instrumented), builds and runs ctest there.
#   tools/sanitize.sh [CTEST ARGS...]      e.g. tools/sanitize.sh -L platform
# Not part of CI: a sanitized build of the whole tree takes over an hour on two
# cores (LibTorch-heavy objects, no ccache sharing with build/). LibTorch itself
# is not instrumented; leak checking is off because LibTorch keeps process-
# lifetime allocations (thread pools, registries) that LSan reports.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-asan"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S "$root" -B "$build" -G Ninja -DQTOOL_BUILD_TESTS=ON -DQTOOL_USE_CCACHE=ON -DQTOOL_USE_PCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$san" -DCMAKE_C_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined"
cmake --build "$build" -j2
# Plugins are dlopen'ed by an instrumented qhost: the runtime is already loaded.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j2 "$@"
