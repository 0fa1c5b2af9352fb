#!/usr/bin/env bash
# From a fresh Debian bookworm checkout to a built tree:
# installs dependencies, configures build/ (Ninja, ccache, tests on) and builds
# everything with -j2. Safe to re-run: each step is incremental.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DQTOOL_BUILD_TESTS=ON -DQTOOL_USE_CCACHE=ON
cmake --build "$root/build" -j2
