#!/usr/bin/env bash
# compare_builds.sh - does a refactor change behaviour or speed? Two build trees
# (BASE: before, NEW: after), each run with its own qhost, its own plugins and
# its own source tree's experiment files:
#
#   tools/bench/compare_builds.sh BASE_BUILD_DIR NEW_BUILD_DIR [--rounds N] [--steps N]
#                                 [--runs-only | --bench-only] [--keep DIR]
#
# 1. Behaviour: the README's quickstart (experiments/quickstart.toml, FP ResNet-20 on
#    Fashion-MNIST), shortened to 2 epochs of --steps steps (default 60) at seed 1 and
#    2 intra-op threads, then the LSQ 2/2 fine-tune of it (experiments/fmnist/
#    lsq_2bit_plain.toml, init_from that build's own quickstart best.h5) so the
#    quantizer path runs too. Each build trains into a fresh temporary run folder.
#    Compared: every evaluation (loss, top-1, top-5), every train_epoch and step
#    record of metrics.jsonl (loss, top-1, lr; timings left out) and, bit for bit,
#    every tensor of best.h5 and last.h5 (/model, /optimizer, /integer).
#    Prints IDENTICAL or each difference; exits 1 when anything differs.
# 2. Speed: the step benchmarks train_step (ResNet-20 and ResNet-18, FP and LSQ 2/2),
#    kd_step (plain and kd steps) and fakequant_forward (the LSQ run's best.h5, batch 1
#    and 128) of BASE and NEW, N rounds (default 5); per-round and median NEW/BASE.
#    The builds alternate within each round and the order flips every round (BASE NEW,
#    NEW BASE, ...): this machine is 2 noisy vCPUs whose speed drifts by tens of
#    percent between minutes, so only runs close in time are compared, and neither
#    build always gets the warmer (or colder) slot. A ratio within a few percent of
#    1.00 is noise here; look for a consistent shift across rounds.
#
# Run it with nothing else building on the machine (on the shared dev VM, hold the
# build lock for the whole run: flock /work/build.lock tools/bench/compare_builds.sh BASE NEW).
# Needs, in both build trees: qhost, the plugins (qtool_plugins) and the targets
# train_step, kd_step, fakequant_forward (configured with -DQTOOL_BUILD_TESTS=ON);
# /usr/bin/python3 with h5py; the Fashion-MNIST files the quickstart names.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
usage="usage: compare_builds.sh BASE_BUILD_DIR NEW_BUILD_DIR [--rounds N] [--steps N] [--runs-only | --bench-only] [--keep DIR]"
[[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
base=$(cd "$1" && pwd) new=$(cd "$2" && pwd)
shift 2
rounds=5 steps=60 do_runs=1 do_bench=1 keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=${2:?$usage}; shift 2 ;;
    --steps) steps=${2:?$usage}; shift 2 ;;
    --runs-only) do_bench=0; shift ;;
    --bench-only) do_runs=0; shift ;;
    --keep) keep=${2:?$usage}; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
threads=2

# The source tree a build was configured from (its experiments/ are used with it).
src_of() { sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt"; }
for b in "$base" "$new"; do
  for f in host/qhost train_step kd_step fakequant_forward; do
    [[ -x $b/$f ]] || { echo "compare_builds: $b/$f is missing (build it first)" >&2; exit 2; }
  done
done
if [[ -n $keep ]]; then work=$keep; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
declare -A build=([BASE]=$base [NEW]=$new)
echo "BASE $base ($(git -C "$(src_of "$base")" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "NEW  $new ($(git -C "$(src_of "$new")" rev-parse --short HEAD 2>/dev/null || echo '?'))"
# Each build sees only its own plugins.
unset QTOOL_PLUGIN_PATH
export QTOOL_NO_DEFAULT_PLUGIN_PATH=1
in_build() { local b=$1; shift; QTOOL_PLUGIN_PATH="$b/plugins" "$@"; }

# ---- 1. behaviour -------------------------------------------------------------------
status=0
if ((do_runs)); then
  common=(--set experiment.seed=1 --set experiment.threads=$threads --set experiment.log_every=10
          --set train.epochs=2 --set train.max_steps_per_epoch="$steps")
  for side in BASE NEW; do
    b=${build[$side]} src=$(src_of "${build[$side]}")
    for job in quickstart lsq; do
      out=$work/$side/$job
      if [[ $job == quickstart ]]; then toml=$src/experiments/quickstart.toml extra=()
      else toml=$src/experiments/fmnist/lsq_2bit_plain.toml extra=(--set train.init_from="$work/$side/quickstart/best.h5"); fi
      t0=$SECONDS
      if ! in_build "$b" "$b/host/qhost" run "$toml" --out "$out" "${common[@]}" "${extra[@]}" > "$work/$side.$job.log" 2>&1; then
        echo "$side $job: qhost run failed:" >&2; tail -20 "$work/$side.$job.log" >&2; exit 1
      fi
      echo "$side $job: $(grep -o 'epoch [0-9]*/[0-9]* eval:.*' "$work/$side.$job.log" | tail -1) [$((SECONDS - t0)) s]"
    done
  done
  for f in quickstart.toml fmnist/base.toml fmnist/lsq_2bit_plain.toml; do
    cmp -s "$(src_of "$base")/experiments/$f" "$(src_of "$new")/experiments/$f" ||
      echo "note: experiments/$f differs between the two source trees"
  done
  "$py" - "$work" <<'PY' || status=1
import json, sys
import h5py, numpy as np
work = sys.argv[1]
# Timing fields differ run to run by nature; everything else must match exactly.
TIMING = {"images_per_s", "data_wait_frac", "peak_mem_mb", "seconds", "allreduce_wait_ms_per_step"}
diffs = []
def records(path):
    return [{k: v for k, v in json.loads(l).items() if k not in TIMING} for l in open(path) if l.strip()]
def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        for group in ("model", "optimizer", "integer"):
            if group in f:
                f[group].visititems(lambda n, o: out.__setitem__(f"/{group}/{n}", o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
for job in ("quickstart", "lsq"):
    a, b = records(f"{work}/BASE/{job}/metrics.jsonl"), records(f"{work}/NEW/{job}/metrics.jsonl")
    if len(a) != len(b):
        diffs.append(f"{job}: metrics.jsonl has {len(a)} records in BASE, {len(b)} in NEW")
    for i, (ra, rb) in enumerate(zip(a, b)):
        for k in sorted(set(ra) | set(rb)):
            if ra.get(k) != rb.get(k):
                diffs.append(f"{job}: metrics.jsonl record {i + 1} ({ra.get('kind')} epoch {ra.get('epoch')} step "
                             f"{ra.get('step')}): {k} BASE {ra.get(k)} NEW {rb.get(k)}")
    for e in (r for r in b if r.get("kind") == "eval"):
        print(f"{job} eval epoch {e['epoch']}: loss {e['loss']} top-1 {e['top1']} top-5 {e['top5']} (NEW)")
    for ck in ("best.h5", "last.h5"):
        ta, tb = tensors(f"{work}/BASE/{job}/{ck}"), tensors(f"{work}/NEW/{job}/{ck}")
        for name in sorted(set(ta) | set(tb)):
            if name not in ta or name not in tb:
                diffs.append(f"{job}/{ck}: {name} only in {'BASE' if name in ta else 'NEW'}")
            elif ta[name].shape != tb[name].shape or ta[name].dtype != tb[name].dtype:
                diffs.append(f"{job}/{ck}: {name} shape/dtype {ta[name].shape} {ta[name].dtype} vs {tb[name].shape} {tb[name].dtype}")
            elif ta[name].tobytes() != tb[name].tobytes():
                d = np.abs(ta[name].astype(np.float64) - tb[name].astype(np.float64))
                diffs.append(f"{job}/{ck}: {name} differs in {int((d > 0).sum())} of {d.size} values (max |diff| {d.max():.3g})")
        print(f"{job}/{ck}: {len(ta)} tensors compared bit for bit")
if diffs:
    print(f"DIFFERENT ({len(diffs)} differences; first 40):")
    for d in diffs[:40]:
        print("  " + d)
    sys.exit(1)
print("IDENTICAL (metrics.jsonl without timings; every checkpoint tensor bit for bit)")
PY
fi

# ---- 2. speed -----------------------------------------------------------------------
if ((do_bench)); then
  # fakequant_forward needs a quantized checkpoint: the LSQ run's (or a fresh 1-step one).
  ckpt=$work/BASE/lsq/best.h5
  if [[ ! -f $ckpt ]]; then
    src=$(src_of "$base")
    in_build "$base" "$base/host/qhost" run "$src/experiments/fmnist/lsq_2bit_plain.toml" --out "$work/fq" --smoke \
      --set train.init_from= --set experiment.threads=$threads > "$work/fq.log" 2>&1 ||
      { echo "fakequant checkpoint run failed:" >&2; tail -20 "$work/fq.log" >&2; exit 1; }
    ckpt=$work/fq/best.h5
  fi
  log=$work/bench.log
  : > "$log"
  # One benchmark pass of one build; lines "round R SIDE metric ms".
  bench_pass() {
    local r=$1 side=$2 b=${build[$2]}
    in_build "$b" "$b/train_step" --threads $threads | awk -v p="round $r $side" '
      /^ResNet-20/ { c = "r20" } /^ResNet-18/ { c = "r18" }
      /^ResNet-/ { print p, "train_step/" c "/fp", $4; if ($5 != "-") print p, "train_step/" c "/lsq", $5 }' >> "$log"
    in_build "$b" "$b/kd_step" --threads $threads | awk -v p="round $r $side" '
      /^ResNet-20/ { s = ($2 ~ /^3x/) ? "cifar" : "fmnist"; fp = ($4 == "FP"); st = fp ? "fp" : "lsq";
                     print p, "kd_step/" s "/" st "/plain", $(fp ? 5 : 6); print p, "kd_step/" s "/" st "/kd", $(fp ? 6 : 7) }' >> "$log"
    for batch in 1 128; do
      in_build "$b" "$b/fakequant_forward" "$ckpt" --batch $batch --iters 30 --threads $threads |
        awk -v p="round $r $side" -v m="fakequant_forward/b$batch" '/^ms_per_batch/ { print p, m, $2 }' >> "$log"
    done
  }
  echo
  echo "step benchmarks, $rounds rounds, threads $threads (ms; lower is faster)"
  for ((r = 1; r <= rounds; ++r)); do
    if ((r % 2)); then order=(BASE NEW); else order=(NEW BASE); fi
    t0=$SECONDS
    for side in "${order[@]}"; do bench_pass "$r" "$side"; done
    echo "round $r (${order[0]} first) done in $((SECONDS - t0)) s"
  done
  "$py" - "$log" <<'PY'
import statistics, sys
ms = {}  # metric -> round -> side -> ms
for line in open(sys.argv[1]):
    _, r, side, metric, v = line.split()
    ms.setdefault(metric, {}).setdefault(int(r), {})[side] = float(v)
rounds = sorted({r for m in ms.values() for r in m})
print(f"\n{'benchmark':30}" + "".join(f"{'r' + str(r):>7}" for r in rounds) +
      f"{'median':>8}{'BASE ms':>10}{'NEW ms':>10}   (NEW/BASE per round)")
for metric, per in ms.items():
    ratios = [per[r]["NEW"] / per[r]["BASE"] for r in rounds if {"NEW", "BASE"} <= per.get(r, {}).keys()]
    base_med = statistics.median(per[r]["BASE"] for r in per if "BASE" in per[r])
    new_med = statistics.median(per[r]["NEW"] for r in per if "NEW" in per[r])
    print(f"{metric:30}" + "".join(f"{x:7.3f}" for x in ratios) +
          f"{statistics.median(ratios):8.3f}{base_med:10.1f}{new_med:10.1f}")
PY
fi
exit $status
