#!/usr/bin/env bash
# Installs every build and test dependency of qtool from Debian bookworm packages.
# Idempotent and quick: asks dpkg first and runs apt-get (update + install) only
# when something is missing.
#   tools/install-deps.sh          install what is missing (needs root or sudo)
#   tools/install-deps.sh --check  only report what is missing (exit 1 if anything is)
#   tools/install-deps.sh --no-ort  skip ONNX Runtime (below)
# Then, unless --no-ort: ONNX Runtime for the tests of `qhost export`
# (tests/export): the npm package onnxruntime-node (version pinned in
# tests/export/ort/package.json) installed into tests/export/ort/node_modules
# with --ignore-scripts. Its CPU library and Node binding are inside the
# package; the skipped install script only downloads the CUDA provider
# libraries, which the tests do not use.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
check=0
ort=1
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --no-ort) ort=0 ;;
    *) echo "install-deps: unknown option $arg (use --check, --no-ort)" >&2; exit 1 ;;
  esac
done

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
  # qhost export: ONNX protobuf classes (libonnx-dev), protobuf; onnx.checker in the tests
  libonnx-dev libprotobuf-dev protobuf-compiler
  # Python tools (converters, plots, the ONNX checks); called as /usr/bin/python3
  python3-torch python3-h5py python3-numpy python3-matplotlib python3-onnx
)
# Node.js and npm run ONNX Runtime in the export tests; a machine that has them
# already (e.g. a newer Node.js) keeps its own.
if [[ $ort -eq 1 ]] && ! { command -v node >/dev/null && command -v npm >/dev/null; }; then
  packages+=(nodejs npm)
fi

ort_dir="$root/tests/export/ort"
ort_version=$(sed -n 's/.*"onnxruntime-node": *"\([^"]*\)".*/\1/p' "$ort_dir/package.json")
ort_installed() {
  local v
  v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ort_dir/node_modules/onnxruntime-node/package.json" 2>/dev/null | head -1)
  [[ "$v" == "$ort_version" ]]
}
install_ort() {
  [[ $ort -eq 1 ]] || return 0
  if ort_installed; then
    echo "install-deps: onnxruntime-node $ort_version present in tests/export/ort"
    return 0
  fi
  if [[ $check -eq 1 ]]; then
    echo "install-deps: missing: onnxruntime-node $ort_version in tests/export/ort (npm)"
    return 1
  fi
  echo "install-deps: installing onnxruntime-node $ort_version into tests/export/ort (npm, --ignore-scripts)"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock --loglevel=error)
  ort_installed || { echo "install-deps: onnxruntime-node did not install" >&2; return 1; }
}

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_ort
  exit $?
fi
echo "install-deps: missing: ${missing[*]}"
if [[ $check -eq 1 ]]; then
  install_ort || true
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
install_ort
