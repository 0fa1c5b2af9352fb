#!/usr/bin/python3
"""Reference timing for tools/bench/data_pipeline.cpp: the PIL + torch
equivalent of torchvision's ImageNet training transforms
(RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize), one
thread, on the JPEGs the C++ benchmark leaves in --dir.

    data_pipeline_bench --dir /tmp/jpegs      # generates the files, times qtool
    /usr/bin/python3 tools/bench/data_pipeline_reference.py /tmp/jpegs

torchvision itself is not installed here; its transforms on PIL images are
exactly these PIL calls (crop + resize with BILINEAR, transpose) plus the
tensor conversion, so the cost is the same.
"""
import math
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def rrc_params(width, height, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return random.randint(0, height - h), random.randint(0, width - w), h, w
    return 0, 0, height, width


def load(path):
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    i, j, h, w = rrc_params(*img.size)
    img = img.resize((224, 224), Image.BILINEAR, box=(j, i, j + w, i + h))
    if random.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    return (t - MEAN) / STD


def main():
    root = os.path.join(sys.argv[1], "train")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    for p in files:  # warm-up
        load(p)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < 3.0:
        for p in files:
            load(p)
            n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"PIL+torch reference, 1 thread: {n / wall:.1f} images/s wall, "
          f"{n / cpu:.1f} images per CPU-second ({n} images)")


if __name__ == "__main__":
    main()
