#!/usr/bin/env bash
# data_pipeline_rounds.sh - alternating rounds of the input pipeline benchmark
# and its PIL + torch reference, with the per-round and median images per
# CPU-second and the ratio to the reference (the figure README quotes).
#
#   tools/bench/data_pipeline_rounds.sh BENCH_EXE [ROUNDS=5] [DIR=/tmp/qtool_pipeline_jpegs] [bench args...]
#
# Each round runs the C++ benchmark (workers 0, 1, 2) and then the reference on
# the same JPEGs, so both see the same machine state; absolute rates on a
# shared VM swing by a third between minutes, the ratios much less.
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
bench=${1:?usage: data_pipeline_rounds.sh BENCH_EXE [ROUNDS] [DIR] [bench args...]}
rounds=${2:-5}
dir=${3:-/tmp/qtool_pipeline_jpegs}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for ((r = 1; r <= rounds; ++r)); do
  "$bench" --dir "$dir" "$@" | sed "s/^/round $r: /" | tee -a "$log"
  /usr/bin/python3 "$here/data_pipeline_reference.py" "$dir" | sed "s/^/round $r: /" | tee -a "$log"
done
/usr/bin/python3 - "$log" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+): (workers=\d|PIL)\S*.*?([\d.]+) images per CPU-second", line)
    if m:
        rows.setdefault(int(m.group(1)), {})[m.group(2)] = float(m.group(3))
keys = ["workers=0", "workers=1", "workers=2", "PIL"]
print("\nimages per CPU-second (ratio to PIL + torch in the same round)")
print("round " + "".join(f"{k:>18}" for k in keys))
ratios = {k: [] for k in keys}
for r in sorted(rows):
    cells = []
    for k in keys:
        v = rows[r].get(k)
        if v is None:
            cells.append(f"{'-':>18}")
            continue
        ratio = v / rows[r]["PIL"]
        ratios[k].append(ratio)
        cells.append(f"{v:9.1f} ({ratio:4.2f}x)")
    print(f"{r:5d} " + "".join(cells))
med = {k: statistics.median([rows[r][k] for r in rows if k in rows[r]]) for k in keys}
print("median" + "".join(f"{med[k]:9.1f} ({med[k] / med['PIL']:4.2f}x)" for k in keys))
print("median of the per-round ratios: " +
      ", ".join(f"{k} {statistics.median(ratios[k]):.2f}x" for k in keys[:3]))
PY
