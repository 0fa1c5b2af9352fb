#!/usr/bin/env bash
# The GPU session, as one script (README.md#gpus, docs/training.md#devices-and-precision).
# Written and syntax-checked (bash -n) on a CPU-only machine; it has NOT been run yet.
# Everything it reports comes from this run; phases that fail print "not run" with the log.
#
#   1. info: GPU, driver, torch, CUDA, nvcc, cmake
#   2. kernels: build tools/gpu (SDK, LibTorch-only plugins, cuda_check; its plugin loader
#      is the host's and needs Boost headers and spdlog) against the machine's LibTorch
#      (from its PyTorch) and run the existing CUDA-vs-CPU checks
#   3. qhost: build qhost + the plugins it needs against the same LibTorch (needs toml++,
#      HDF5, Boost, spdlog; without them phases 4-6 are reported as not run)
#   4. correctness: ResNet-18 LSQ 2/2 on synthetic ImageNet-shaped data, ~200 steps on CUDA
#      fp32, and the first 5 steps on the CPU; step losses compared to 1e-3 (TF32 off)
#   5. speed: FP32 / LSQ / DoReFa / LSQ+bf16 at batch 64 and 256 (qhost, img/s, data wait,
#      peak memory) and a PyTorch eager ResNet-18 baseline (FP32 and bf16 autocast)
#   6. resume: GPU -> CPU -> GPU through last.h5
# Logs and the table go to $OUT (default /tmp/qtool-gpu). Knobs: STEPS_TIME (30),
# STEPS_CORRECT (200), JOBS (nproc), ARCH (90).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-/tmp/qtool-gpu}
mkdir -p "$out"
jobs=${JOBS:-$(nproc)}
arch=${ARCH:-90}
steps_time=${STEPS_TIME:-30}
steps_correct=${STEPS_CORRECT:-200}
results="$out/results.tsv"   # phase <TAB> item <TAB> value <TAB> note
: > "$results"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> "$results"; }
say() { echo "== $*"; }

# ---------------------------------------------------------------- 1. info
torch_dir=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null)/Torch
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  cmake --version | head -1
  nvcc --version | tail -1; } 2>&1 | tee "$out/gpu.txt"
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)

# ---------------------------------------------------------------- 2. kernel checks
say "kernels: tools/gpu build and cuda_check"
kb=/tmp/build-gpu
if cmake -S "$root/tools/gpu" -B "$kb" -G Ninja -DTorch_DIR="$torch_dir" -DCMAKE_CUDA_COMPILER="$nvcc" \
     -DCMAKE_CUDA_ARCHITECTURES="$arch" > "$out/kernels_configure.log" 2>&1 &&
   timeout 900 ninja -C "$kb" -k 0 -j"$jobs" > "$out/kernels_build.log" 2>&1 && [ -x "$kb/cuda_check" ]; then
  timeout 600 "$kb/cuda_check" > "$out/cuda_check.txt" 2>&1
  rc=$?
  cat "$out/cuda_check.txt"
  mism=$(grep -c MISMATCH "$out/cuda_check.txt" || true)
  row kernels cuda_check "rc=$rc, $mism mismatches" "$out/cuda_check.txt"
else
  grep -E "error|FAILED" "$out/kernels_configure.log" "$out/kernels_build.log" 2>/dev/null | head -20
  row kernels cuda_check "not run" "build failed: $out/kernels_build.log"
fi

# ---------------------------------------------------------------- 3. qhost
say "qhost: full build against $torch_dir"
qb=/tmp/build-qhost
qhost=""
plugins="qplug_synthetic qplug_torch_resnet qplug_lsq qplug_dorefa"
# QTOOL_TEST_SEAMS: phase 6 stops runs after an epoch through QTOOL_TEST_STOP_AFTER_EPOCHS,
# a hook newer trees compile only into test builds.
if cmake -S "$root" -B "$qb" -G Ninja -DTorch_DIR="$torch_dir" -DCMAKE_BUILD_TYPE=Release -DQTOOL_BUILD_TESTS=OFF \
     -DQTOOL_TEST_SEAMS=ON \
     -DQTOOL_USE_PCH=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
     > "$out/qhost_configure.log" 2>&1 &&
   timeout 1200 ninja -C "$qb" -j"$jobs" qhost $plugins > "$out/qhost_build.log" 2>&1; then
  qhost="$qb/host/qhost"
  grep -q "QTOOL_WITH_CUDA" "$qb/build.ninja" && row qhost build "ok, QTOOL_WITH_CUDA" || row qhost build "ok, but no QTOOL_WITH_CUDA" "CPU LibTorch?"
else
  tail -30 "$out/qhost_configure.log" "$out/qhost_build.log" 2>/dev/null | grep -vE "^\s*$" | tail -30
  row qhost build "not run" "configure/build failed: $out/qhost_configure.log, $out/qhost_build.log"
fi
plugin_dir=$(dirname "$(find "$qb" -name 'libqplug_lsq.so' -print -quit 2>/dev/null || echo "$qb/plugins/x")")
exp="$out/exp"
mkdir -p "$exp"
rm -rf "$out/runs"  # qhost refuses to start a new run in a folder that holds one

# write_exp NAME QUANT(fp|lsq|dorefa) BATCH DEVICE PRECISION SAMPLES EPOCHS MAX_STEPS LOG_EVERY
write_exp() {
  local quant=""
  case "$2" in
    lsq) quant=$'[quant.activation]\ntype = "lsq"\nbits = 2\nquant_group = 1\n[quant.weight]\ntype = "lsq"\nbits = 2\nquant_group = 1\nadaptive = "var-mean"' ;;
    dorefa) quant=$'[quant.activation]\ntype = "dorefa"\nbits = 2\n[quant.weight]\ntype = "dorefa"\nbits = 2' ;;
  esac
  cat > "$exp/$1.toml" <<EOF
[experiment]
name = "$1"
seed = 7
device = "$4"
log_every = $9
[plugins]
path = ["$plugin_dir"]
load = ["synthetic", "torch_resnet", "lsq", "dorefa"]
[data]
type = "synthetic"
num_samples = $6
num_classes = 1000
channels = 3
height = 224
width = 224
signal = 0.5
batch_size = $3
workers = 12
prefetch = 8
[model]
type = "torch_resnet"
depth = 18
$quant
[train]
epochs = $7
max_steps_per_epoch = $8
precision = "$5"
cudnn_benchmark = true
[optimizer]
type = "sgd"
lr = 0.01
momentum = 0.9
EOF
}
# Step losses of a run: "step loss" lines from metrics.jsonl.
losses() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r.get("kind")=="step": print(r["step"], r["loss"])' "$1/metrics.jsonl"; }

# ---------------------------------------------------------------- 4. correctness
if [ -n "$qhost" ]; then
  say "correctness: LSQ 2/2 ResNet-18, CUDA fp32 ${steps_correct} steps vs CPU 5 steps"
  # 640 samples = 10 batches of 64 per epoch; the CUDA run repeats epochs up to steps_correct.
  write_exp correct_cuda lsq 64 cuda fp32 640 $(( (steps_correct + 9) / 10 )) 0 1
  write_exp correct_cpu lsq 64 cpu fp32 640 1 5 1
  # TF32 convolutions/matmuls would differ from the CPU by ~1e-3 on their own.
  export NVIDIA_TF32_OVERRIDE=0
  t0=$(date +%s)
  timeout 1200 "$qhost" run "$exp/correct_cuda.toml" --out "$out/runs/correct_cuda" > "$out/correct_cuda.log" 2>&1
  rc_cuda=$?
  t1=$(date +%s)
  timeout 900 "$qhost" run "$exp/correct_cpu.toml" --out "$out/runs/correct_cpu" > "$out/correct_cpu.log" 2>&1
  rc_cpu=$?
  unset NVIDIA_TF32_OVERRIDE
  grep -m1 "device:" "$out/correct_cuda.log"
  if [ $rc_cuda -eq 0 ] && [ $rc_cpu -eq 0 ]; then
    losses "$out/runs/correct_cuda" > "$out/correct_cuda.loss"
    losses "$out/runs/correct_cpu" > "$out/correct_cpu.loss"
    cmp=$(python3 -c 'import sys
a=dict(l.split() for l in open(sys.argv[1])); b=dict(l.split() for l in open(sys.argv[2]))
d=[abs(float(a[k])-float(b[k])) for k in sorted(b, key=int) if k in a]
print(len(d), max(d) if d else "nan", "ok" if d and max(d) <= 1e-3 else "FAIL")' "$out/correct_cuda.loss" "$out/correct_cpu.loss")
    row correct "cuda vs cpu first-5 step losses (n, max|diff|, <=1e-3)" "$cmp"
    row correct "cuda ${steps_correct}-step run" "$(tail -1 "$out/correct_cuda.loss") (step loss), $((t1 - t0)) s" \
        "$(grep -m1 'eval:' "$out/correct_cuda.log" | tail -1)"
  else
    row correct "cuda vs cpu" "not run" "rc cuda=$rc_cuda cpu=$rc_cpu: $out/correct_cuda.log $out/correct_cpu.log"
  fi
else
  row correct "cuda vs cpu" "not run" "no qhost"
fi

# ---------------------------------------------------------------- 5. speed
if [ -n "$qhost" ]; then
  say "speed: qhost FP32/LSQ/DoReFa/LSQ+bf16 at b64/b256, ${steps_time} steps each"
  for b in 64 256; do
    for cfg in fp32:fp:fp32 lsq:lsq:fp32 dorefa:dorefa:fp32 lsq_bf16:lsq:bf16; do
      IFS=: read -r name quant prec <<< "$cfg"
      write_exp "speed_${name}_b$b" "$quant" "$b" cuda "$prec" $(( b * steps_time )) 1 "$steps_time" 10
      timeout 600 "$qhost" run "$exp/speed_${name}_b$b.toml" --out "$out/runs/speed_${name}_b$b" \
        > "$out/speed_${name}_b$b.log" 2>&1
      rc=$?
      if [ $rc -eq 0 ]; then
        # Steady state: the median of the step records after the first (cuDNN autotuning, warm-up).
        v=$(python3 -c 'import json,sys,statistics as st
r=[json.loads(l) for l in open(sys.argv[1])]; s=[x for x in r if x.get("kind")=="step"][1:]
if not s: print("n/a"); sys.exit()
m=lambda k: st.median([x[k] for x in s if x.get(k) is not None] or [float("nan")])
print("%.0f img/s, data wait %.0f%%, peak %s MiB" % (m("images_per_s"), 100*m("data_wait_frac"), "%.0f" % m("peak_mem_mb")))' \
          "$out/runs/speed_${name}_b$b/metrics.jsonl")
        row speed "qhost ${name} b$b" "$v"
      else
        row speed "qhost ${name} b$b" "not run" "rc=$rc: $out/speed_${name}_b$b.log"
      fi
    done
  done
fi
say "speed: PyTorch eager ResNet-18 baseline (data already on the GPU)"
timeout 600 python3 - "$steps_time" > "$out/eager.txt" 2>&1 <<'PY'
import sys, time, torch, torch.nn as nn
steps = int(sys.argv[1])
def block(cin, cout, stride):
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    class B(nn.Module):
        def __init__(s):
            super().__init__()
            s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.b1 = nn.BatchNorm2d(cout)
            s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(cout); s.d = down
        def forward(s, x):
            y = torch.relu(s.b1(s.c1(x))); y = s.b2(s.c2(y))
            return torch.relu(y + (s.d(x) if s.d is not None else x))
    return B()
def resnet18():
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [block(cin, cout, stride), block(cout, cout, 1)]; cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)
torch.backends.cudnn.benchmark = True
for b in (64, 256):
    for prec in ("fp32", "bf16"):
        torch.manual_seed(0)
        m = resnet18().cuda(); opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(b, 3, 224, 224, device="cuda"); y = torch.randint(0, 1000, (b,), device="cuda")
        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
                out = m(x)
            loss = nn.functional.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        for _ in range(5): step()
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.time()
        for _ in range(steps): step()
        torch.cuda.synchronize(); dt = time.time() - t
        print("eager %s b%d\t%.0f img/s, peak %.0f MiB" % (prec, b, b * steps / dt, torch.cuda.max_memory_allocated() / 2**20))
PY
if [ $? -eq 0 ]; then
  while IFS=$'\t' read -r k v; do row speed "pytorch $k" "$v"; done < "$out/eager.txt"
else
  tail -5 "$out/eager.txt"
  row speed "pytorch eager" "not run" "$out/eager.txt"
fi

# ---------------------------------------------------------------- 6. resume GPU -> CPU -> GPU
if [ -n "$qhost" ]; then
  say "resume: GPU -> CPU -> GPU"
  write_exp resume lsq 16 auto fp32 64 3 4 2
  r="$out/runs/resume"
  rm -rf "$r"
  QTOOL_TEST_STOP_AFTER_EPOCHS=1 timeout 600 "$qhost" run "$exp/resume.toml" --out "$r" --set experiment.device=cuda \
    > "$out/resume1.log" 2>&1; a=$?
  QTOOL_TEST_STOP_AFTER_EPOCHS=2 timeout 600 "$qhost" run "$exp/resume.toml" --out "$r" --resume \
    --set experiment.device=cpu > "$out/resume2.log" 2>&1; b=$?
  timeout 600 "$qhost" run "$exp/resume.toml" --out "$r" --resume --set experiment.device=cuda > "$out/resume3.log" 2>&1; c=$?
  devs=$(for i in 1 2 3; do grep -m1 -o "device: [a-z0-9:]*" "$out/resume$i.log" | cut -d' ' -f2; done | paste -sd'>')
  if [ $a -eq 0 ] && [ $b -eq 0 ] && [ $c -eq 0 ]; then
    row resume "gpu>cpu>gpu" "ok ($devs)" "$(grep -m1 'epoch 3/3 eval' "$out/resume3.log")"
  else
    row resume "gpu>cpu>gpu" "FAILED rc=$a/$b/$c ($devs)" "$out/resume{1,2,3}.log"
  fi
fi

# ---------------------------------------------------------------- table
say "results (device: $(head -1 "$out/gpu.txt"))"
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
w = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
for r in rows:
    print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3] if len(r) > 3 else ''}")
PY
