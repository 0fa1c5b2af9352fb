"""tools/plot on a tiny quantized run: `curves` and `histogram` write PNGs
that read back as real images (not blank, plausible size).

usage: plot_test.py QHOST TOOLS_PLOT EXPERIMENT.toml WORK_DIR
"""
import os
import shutil
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402

qhost, plot, experiment, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
run = os.path.join(work, "run")


def call(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED ({r.returncode}): {' '.join(args)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


# Two epochs so the curves have lines, not single points; a second run (another seed) to overlay.
call([qhost, "run", experiment, "--set", "train.epochs=2", "--out", run])
run2 = os.path.join(work, "run_seed6")
call([qhost, "run", experiment, "--set", "train.epochs=2", "--set", "experiment.seed=6", "--out", run2])


def check_png(path, what):
    assert os.path.isfile(path), f"{what}: {path} missing"
    size = os.path.getsize(path)
    assert size > 5000, f"{what}: {path} is only {size} bytes"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 300, f"{what}: shape {img.shape}"
    rgb = img[..., :3]
    # Not blank: many distinct colours and a good share of non-white pixels.
    non_white = float((rgb.min(axis=2) < 0.95).mean())
    colours = len(np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8), axis=0))
    assert non_white > 0.02, f"{what}: only {non_white:.3f} of the pixels are drawn"
    assert colours > 20, f"{what}: only {colours} colours"
    print(f"{what}: {path} {img.shape} {size} bytes, {non_white:.2%} drawn, {colours} colours")


curves = os.path.join(work, "curves.png")
print(call([plot, "curves", run, run2, "-o", curves]).strip())
check_png(curves, "curves")

hist = os.path.join(work, "hist.png")
out = call([plot, "histogram", os.path.join(run, "best.h5"), "-o", hist, "--max-layers", "6"])
print(out.strip())
assert "of" in out and "layers" in out
# 2-bit LSQ weights: every shown layer has its 4 levels marked from clip_val.
assert out.count("4 levels, clip") == len([l for l in out.splitlines() if " weights, " in l]) > 0, out
# tiny_quant.toml standardises its weights (var-mean): the levels are drawn over
# the standardised weights, which is what the quantizer quantizes.
assert "histogram of the var-mean standardised weights" in out, out
check_png(hist, "histogram")

# A folder that is not a run is an error with a message, not a traceback.
r = subprocess.run([plot, "curves", work, "-o", os.path.join(work, "x.png")], capture_output=True, text=True)
assert r.returncode != 0 and "no metrics.jsonl" in r.stderr and "Traceback" not in r.stderr, r.stderr
print("OK")
