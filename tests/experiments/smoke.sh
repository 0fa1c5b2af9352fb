#!/bin/sh
# Two-step smoke run of one experiment file on tiny synthetic data.
#   smoke.sh QHOST EXPERIMENT.toml OUT_DIR quant|fp [--set KEY=VALUE]...
# Replaces the whole [data] table by a synthetic one (the real data roots do
# not exist on build machines), drops the FP initialisation (no FP run exists
# here), then checks that the run wrote its files and an evaluation record,
# and (quant) that the model really has quantized layers.
set -eu
qhost=$1; file=$2; out=$3; kind=$4; shift 4
rm -rf "$out"
"$qhost" run "$file" --smoke --out "$out" \
  --set 'data={type="synthetic",num_samples=16,num_classes=4,channels=3,height=32,width=32,batch_size=4,workers=0}' \
  --set 'train.init_from=""' --set experiment.threads=1 "$@"
for f in best.h5 last.h5 resolved.toml metrics.jsonl log.txt; do
  [ -s "$out/$f" ] || { echo "smoke.sh: $out/$f missing or empty" >&2; exit 1; }
done
grep -q '"kind": "eval"' "$out/metrics.jsonl" || {
  echo "smoke.sh: no evaluation record in $out/metrics.jsonl" >&2; exit 1; }
if [ "$kind" = quant ]; then
  grep -Eq ', [1-9][0-9]* quantized\)' "$out/log.txt" || {
    echo "smoke.sh: no quantized layer reported in $out/log.txt" >&2; exit 1; }
fi
