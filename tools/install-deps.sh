#!/usr/bin/env bash
# Installs every build and test dependency of qtool from Debian bookworm packages.
# Idempotent and quick: asks dpkg first and runs apt-get (update + install) only
# when something is missing.
#   tools/install-deps.sh          install what is missing (needs root or sudo)
#   tools/install-deps.sh --check  only report what is missing (exit 1 if anything is)
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache
  # libraries
  libtorch-dev libboost-dev libboost-program-options-dev libtomlplusplus-dev libhdf5-dev
  libspdlog-dev libgtest-dev libgloo-dev libopenblas0-openmp libturbojpeg0-dev libpng-dev
  # data used by tests and examples
  dataset-fashion-mnist
  # fuzz targets (tools/fuzz.sh, tests/fuzz): clang with libFuzzer and the sanitizers
  clang-14 libclang-rt-14-dev
  # Python tools (converters, plots); called as /usr/bin/python3
  python3-torch python3-h5py python3-numpy python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
if [[ "${1:-}" == "--check" ]]; then
  exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (sudo not found)" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
