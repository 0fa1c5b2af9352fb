#!/usr/bin/env bash
# ONNX Runtime CPU latency of the exported ResNet-18 LSQ 2/2 (experiments/lsq_r18_2bit.toml)
# at batch 1 and 16 vs qhost's forward of the same fake-quantized checkpoint, same run
# (tools/bench/export_ort.js). The checkpoint comes from a one-step smoke run on stand-in
# 224x224 data (--synthetic): the weights do not matter for latency.
#   tools/bench/export_ort.sh [build-dir] [threads]
# Needs the targets qhost and fakequant_forward, the plugins resnet, torch_resnet, lsq, kd,
# synthetic and cosine, and onnxruntime-node (tools/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
threads=${2:-2}
qhost=$build/host/qhost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export QTOOL_PLUGIN_PATH=${QTOOL_PLUGIN_PATH:-$build/plugins}

# One training step of batch 8, two evaluation batches of 8.
"$qhost" run "$here/../../experiments/lsq_r18_2bit.toml" --synthetic --smoke --out "$out/run" \
  --set train.max_steps_per_epoch=1 --set data.batch_size=8 --set data.eval_batch_size=8 \
  --set experiment.threads="$threads" > "$out/run.log" 2>&1 || { cat "$out/run.log"; exit 1; }
"$qhost" export "$out/run" -o "$out/model.onnx" --synthetic > "$out/export.log" 2>&1 || { cat "$out/export.log"; exit 1; }
node "$here/export_ort.js" "$out/model.onnx" "$out/run/best.h5" "$build/fakequant_forward" \
  --threads "$threads" "${@:3}"
