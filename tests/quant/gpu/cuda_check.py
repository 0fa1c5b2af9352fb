"""Builds tests/quant/gpu/cuda_check.cpp with the quant_common sources as a PyTorch
C++ extension (needs a CUDA PyTorch and nvcc) and runs it. Run from the repository root:
    python3 tests/quant/gpu/cuda_check.py
Exit status 1 when a CUDA kernel disagrees with the composed reference."""
import os
import sys

import torch
from torch.utils.cpp_extension import load

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
qc = os.path.join(root, "plugins", "quant_common")
sources = [os.path.join(root, "tests", "quant", "gpu", "cuda_check.cpp"), os.path.join(qc, "cuda", "kernels_cuda.cu")]
sources += [os.path.join(qc, "src", f) for f in (
    "options.cpp", "kernels_common.cpp", "kernels_lsq.cpp", "kernels_dorefa.cpp", "kernels_pact.cpp",
    "kernels_nonuniform.cpp", "kernels_xnor.cpp", "kernels_lqnet.cpp", "composed.cpp")]
sources.append(os.path.join(root, "sdk", "src", "error.cpp"))
defs = ["-DQTOOL_QUANT_CUDA=1", "-DQTOOL_TORCH_CUDA=1"]
ext = load("qtool_quant_cuda_check", sources,
           extra_include_paths=[os.path.join(qc, "include"), os.path.join(root, "sdk", "include")],
           extra_cflags=["-O3", "-fno-trapping-math"] + defs, extra_cuda_cflags=["-O3"] + defs,
           build_directory=os.environ.get("QTOOL_EXT_BUILD") or None, verbose=False)
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0))
report = ext.check()
print(report)
sys.exit(0 if "FAIL" not in report else 1)
