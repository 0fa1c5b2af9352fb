#!/usr/bin/env bash
# From a fresh Debian bookworm checkout to a built tree: installs dependencies,
# configures build/ (Ninja, ccache, tests configured) and builds with -j2.
#   tools/bootstrap.sh          what running needs: qhost, the SDK and every plugin
#   tools/bootstrap.sh --tests  everything: also the test suite and the benchmarks
# Safe to re-run: each step is incremental, so `--tests` after a plain bootstrap
# only builds what the first one left out.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets=(--target qhost qtool_plugins)
case "${1:-}" in
  "") ;;
  --tests) targets=() ;;
  *) echo "usage: tools/bootstrap.sh [--tests]" >&2; exit 2 ;;
esac
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DQTOOL_BUILD_TESTS=ON -DQTOOL_USE_CCACHE=ON
cmake --build "$root/build" -j2 "${targets[@]}"
