#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) and runs
# each for a bounded time on its seed corpus; any crash, leak, sanitizer report
# or out-of-memory fails. The targets are LibTorch-free: each links only the
# parser it exercises.
#   tools/fuzz.sh [--seconds N] [--build-only] [--out DIR] [TARGET...]
# TARGET: config (TOML experiment loading), plugin_stamp (ELF stamp reader),
# idx (IDX reader, raw and gzip), image (JPEG / PNG decoders), checkpoint
# (HDF5 checkpoint reader, host/checkpoint/checkpoint_h5.cpp), cifar (CIFAR binary
# records); default: all. Needs clang-14 and libclang-rt-14-dev (tools/install-deps.sh).
# A crash leaves its input as DIR/<target>/crash-*: rerun it with
#   DIR/<target>/<target>_fuzz DIR/<target>/crash-...
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=30
build_only=0
out="$root/build-fuzz"
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(config plugin_stamp idx image checkpoint cifar)
cxx=${CXX_FUZZ:-clang++-14}
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/host" -I"$root/sdk/include" -I"$root/datasets/transforms_common/src" -I"$root/datasets/idx/src"
       -I"$root/datasets/cifar/src")
# Sources and seed folders of each target.
sources_of() {
  case "$1" in
    config) echo "tests/fuzz/config_fuzz.cpp host/config/config.cpp host/config/config_writer.cpp host/config/sections.cpp
                  host/config/synthetic_stand_in.cpp sdk/src/value.cpp sdk/src/schema.cpp sdk/src/error.cpp sdk/src/roles.cpp" ;;
    plugin_stamp) echo "tests/fuzz/plugin_stamp_fuzz.cpp host/plugins/plugin_stamp.cpp sdk/src/error.cpp" ;;
    idx) echo "tests/fuzz/idx_fuzz.cpp datasets/idx/src/idx_file.cpp datasets/transforms_common/src/qdata/file_io.cpp
               sdk/src/error.cpp -lz" ;;
    image) echo "tests/fuzz/image_fuzz.cpp datasets/transforms_common/src/qdata/image_decode.cpp
                 datasets/transforms_common/src/qdata/jpeg_decode.cpp datasets/transforms_common/src/qdata/png_decode.cpp
                 sdk/src/error.cpp -ljpeg -lpng" ;;
    checkpoint) echo "tests/fuzz/checkpoint_fuzz.cpp host/checkpoint/checkpoint_h5.cpp sdk/src/error.cpp
                      -I/usr/include/hdf5/serial -lhdf5_serial" ;;
    cifar) echo "tests/fuzz/cifar_fuzz.cpp datasets/cifar/src/cifar_records.cpp sdk/src/error.cpp" ;;
    *) echo "fuzz.sh: unknown target '$1' (config, plugin_stamp, idx, image, checkpoint, cifar)" >&2; return 2 ;;
  esac
}
seeds_of() {
  case "$1" in
    config) echo "$root/tests/cli/data $root/experiments" ;;
    idx)  # Fashion-MNIST's test labels (gzip) when installed
      local d=/usr/share/datasets/fashion-mnist
      if [[ -f $d/t10k-labels-idx1-ubyte.gz ]]; then
        mkdir -p "$out/idx/seeds" && cp "$d/t10k-labels-idx1-ubyte.gz" "$out/idx/seeds/"
        echo "$out/idx/seeds"
      fi ;;
    image) echo "$root/tests/fuzz/seeds/image" ;;
    cifar) echo "$root/tests/fuzz/seeds/cifar" ;;
    checkpoint)  # valid checkpoints, plus the hardening test's hostile ones when h5py is there
      echo "$root/tests/fuzz/seeds/checkpoint $root/tests/fuzz/seeds/checkpoint_known_issues"
      local h="$out/checkpoint/hostile"
      if [[ ! -d $h ]] && /usr/bin/python3 -c "import h5py" 2>/dev/null; then
        /usr/bin/python3 "$root/tests/runtime/hostile_checkpoints.py" "$root/tests/fuzz/seeds/checkpoint/sgd.h5" \
          "$h/all" >/dev/null || true
        # Only what fits -max_len: a longer seed would be cut, i.e. just a truncated file.
        find "$h/all" -name "*.h5" -size -64k -exec cp {} "$h/" \;
        rm -rf "$h/all"
      fi
      if [[ -d $h ]]; then echo "$h"; fi ;;
    plugin_stamp)  # a few real plugins when a build tree has them, else the fuzzer starts from nothing
      local d="$root/build/plugins"
      if compgen -G "$d/libqplug_*.so" >/dev/null; then
        mkdir -p "$out/plugin_stamp/seeds"
        for f in "$d"/libqplug_{lsq,cosine,synthetic}.so; do [[ -f $f ]] && cp "$f" "$out/plugin_stamp/seeds/"; done
        echo "$out/plugin_stamp/seeds"
      fi ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  srcs=$(sources_of "$t")
  dir="$out/$t"
  mkdir -p "$dir/corpus"
  exe="$dir/${t}_fuzz"
  echo "fuzz.sh: building $t"
  (cd "$root" && "$cxx" "${flags[@]}" -DQTOOL_VERSION='"fuzz"' $srcs -o "$exe")
  [[ $build_only -eq 1 ]] && continue
  echo "fuzz.sh: running $t for ${seconds}s"
  # libhdf5 has no frame pointers: the slow unwinder gives leak stacks through
  # it, which the suppressions of its own known leaks need (hdf5_known_leaks.supp);
  # 12 frames reach the HDF5 function they name and keep the unwinding affordable.
  run_env=()
  [[ $t == checkpoint ]] && run_env=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0:malloc_context_size=12"
                                LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$root/tests/fuzz/hdf5_known_leaks.supp")
  # -rss_limit_mb: no input may make a parser use more than 2 GiB.
  if ! (cd "$dir" && env "${run_env[@]}" "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
          -print_final_stats=1 corpus $(seeds_of "$t") >"$dir/fuzz.log" 2>&1); then
    echo "fuzz.sh: $t FAILED; last lines of $dir/fuzz.log:" >&2
    tail -n 40 "$dir/fuzz.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_runs|cov:" "$dir/fuzz.log" | tail -n 2 | sed "s/^/fuzz.sh: $t: /"
  fi
done
exit $status
