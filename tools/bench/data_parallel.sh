#!/usr/bin/env bash
# ResNet-20, global batch 128 on this machine: 1 process x N threads against
# N processes x 1 thread (--nproc N, batch 128/N each), side by side.
# Prints images/s of each, their ratio, and the all-reduce cost per step.
#   tools/bench/data_parallel.sh [build-dir] [N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
n=${2:-2}
qhost=$build/host/qhost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export QTOOL_PLUGIN_PATH=${QTOOL_PLUGIN_PATH:-$build/plugins}
rate() { grep -o 'train: .*(\([0-9.]*\) img/s' "$1" | sed 's/.*(\([0-9.]*\) img\/s/\1/' | tail -1; }

"$qhost" run "$here/dp_r20.toml" --out "$out/one" --set experiment.threads=$n > "$out/one.log" 2>&1
"$qhost" run "$here/dp_r20.toml" --out "$out/many" --nproc "$n" --set data.batch_size=$((128 / n)) \
  --set experiment.threads=1 > "$out/many.log" 2>&1
one=$(rate "$out/one.log")
many=$(rate "$out/many.log")
echo "1 process x $n threads, batch 128:        $one img/s"
echo "$n processes x 1 thread, batch $((128 / n)) each: $many img/s"
echo "ratio (processes / threads): $(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.2f", a / b }')"
grep -o 'data-parallel: .*' "$out/many.log" | head -1
grep -o 'all-reduce wait [0-9.e-]* ms/step' "$out/many.log" | tail -1 | sed 's/^/exposed (not overlapped) /'
