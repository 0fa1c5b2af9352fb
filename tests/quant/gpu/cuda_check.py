"""Builds tests/quant/gpu/cuda_check.cpp with the quant_common and quantizer math sources as a PyTorch
C++ extension (needs a CUDA PyTorch and nvcc) and runs it. Run from the repository root:
    python3 tests/quant/gpu/cuda_check.py
Exit status 1 when a CUDA kernel disagrees with the composed reference."""
import os
import sys

import torch
from torch.utils.cpp_extension import load

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
plugins = os.path.join(root, "plugins")
qc = os.path.join(plugins, "quant_common")
# quant_common's shared pieces plus each method's math (plugins/<method>/src, cuda/).
sources = [os.path.join(root, "tests", "quant", "gpu", "cuda_check.cpp"), os.path.join(qc, "cuda", "dorefa_weight.cu")]
sources += [os.path.join(qc, "src", f) for f in (
    "options.cpp", "kernels_common.cpp", "composed.cpp", "dorefa_weight_kernels.cpp")]
methods = ("lsq", "dorefa", "pact", "lqnet", "xnor", "nonuniform")
for m in methods:
    sources += [os.path.join(plugins, m, "src", m + "_kernels.cpp"), os.path.join(plugins, m, "src", m + "_composed.cpp")]
    if os.path.exists(os.path.join(plugins, m, "cuda", m + "_kernels.cu")):
        sources.append(os.path.join(plugins, m, "cuda", m + "_kernels.cu"))
sources.append(os.path.join(root, "sdk", "src", "error.cpp"))
defs = ["-DQTOOL_QUANT_CUDA=1", "-DQTOOL_TORCH_CUDA=1"]
ext = load("qtool_quant_cuda_check", sources,
           extra_include_paths=[os.path.join(qc, "include"), os.path.join(root, "sdk", "include")]
                               + [os.path.join(plugins, m, "include") for m in methods],
           extra_cflags=["-O3", "-fno-trapping-math"] + defs, extra_cuda_cflags=["-O3"] + defs,
           build_directory=os.environ.get("QTOOL_EXT_BUILD") or None, verbose=False)
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0))
report = ext.check()
print(report)
sys.exit(0 if "FAIL" not in report else 1)
