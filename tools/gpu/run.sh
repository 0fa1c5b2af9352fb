#!/usr/bin/env bash
# Device check (one run on a GPU machine): build the SDK, every LibTorch-only
# plugin, the layer factory and cuda_check against the machine's own CUDA
# LibTorch, then compare CUDA with CPU and time both. Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp}
torch_dir=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
  cmake --version | head -1; nvcc --version | tail -1; } 2>&1 | tee "$out/gpu.txt"
cmake -S tools/gpu -B /tmp/build-gpu -G Ninja -DTorch_DIR="$torch_dir" \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" -DCMAKE_CUDA_ARCHITECTURES=90 \
  > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
grep -E "quant_common|Found Torch|CUDA" "$out/configure.log" | head -10
start=$(date +%s)
ninja -C /tmp/build-gpu -k 0 -j16 ${QTOOL_GPU_TARGETS:-} > "$out/build.log" 2>&1
rc=$?
echo "build rc=$rc in $(( $(date +%s) - start )) s"
grep -E "error|FAILED" "$out/build.log" | head -40
ls /tmp/build-gpu/plugins/*.so | wc -l
nm -C /tmp/build-gpu/plugins/libqplug_lsq.so 2>/dev/null | grep -c "cuda::lsq" || true
[ -x /tmp/build-gpu/cuda_check ] && /tmp/build-gpu/cuda_check 2>&1 | tee "$out/cuda_check.txt"
