#!/usr/bin/python3
"""Writes the seed checkpoints of the `checkpoint` fuzz target (tests/fuzz/seeds/checkpoint).

usage: make_checkpoint_seeds.py OUT_DIR

Each file has qhost's layout (host/checkpoint/checkpoint.cpp: /meta attributes,
/model and /optimizer datasets by slash path, /metrics/history_jsonl) for the
small model that checkpoint_fuzz.cpp expects, so the fuzzer starts from files
that pass every check and reach the data reads. A few variants cover the
storage forms the reader accepts: contiguous, chunked with gzip + shuffle,
a bool buffer (torch_dtype), Adam state, a `module.` prefix (lenient read).
Debian's python3-h5py and numpy only; the files are committed, rerun after
changing the fuzz target's model.
"""
import os
import sys

import h5py
import numpy as np

# The fuzz target's model (checkpoint_fuzz.cpp): name -> (shape, dtype).
PARAMETERS = {
    "conv.weight": ((4, 3, 3, 3), np.float32),
    "bn.weight": ((4,), np.float32),
    "bn.bias": ((4,), np.float32),
    "fc.weight": ((10, 4), np.float32),
    "fc.bias": ((10,), np.float32),
}
BUFFERS = {
    "bn.running_mean": ((4,), np.float32),
    "bn.num_batches_tracked": ((), np.int64),
    "act.scale": ((1,), np.float32),  # lazily shaped in the model: takes the stored shape
    "mask": ((4,), "bool"),
}


def write(path, optimizer="sgd", compress=False, prefix=""):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w", libver=("v108", "latest")) as f:
        meta = f.create_group("meta")
        meta.attrs.create("format_version", 1, dtype="<i8")
        for key, value in (("qtool_version", "0.1.0"), ("sdk_version", "1.0.0"), ("torch_version", "1.13.1"),
                           ("resolved_toml", '[model]\ntype = "fuzz"\n'), ("optimizer_type", optimizer),
                           ("rng_text", "42")):
            meta.attrs[key] = np.bytes_(value.encode())
        meta.attrs.create("epoch", 3, dtype="<i8")
        meta.attrs.create("step", 30, dtype="<i8")
        meta.attrs.create("best_top1", 12.5, dtype="<f8")
        meta.attrs.create("torch_rng_state", np.arange(16, dtype=np.uint8))
        model = f.create_group("model")
        extra = {"compression": "gzip", "shuffle": True} if compress else {}
        for name, (shape, dtype) in {**PARAMETERS, **BUFFERS}.items():
            where = (prefix + name).replace(".", "/")
            if dtype == "bool":
                d = model.create_dataset(where, data=np.array([1, 0, 1, 1], dtype=np.uint8))
                d.attrs["torch_dtype"] = np.bytes_(b"bool")
            elif shape == ():
                model.create_dataset(where, data=np.array(7, dtype=dtype))
            else:
                model.create_dataset(where, data=rng.standard_normal(shape).astype(dtype), **extra)
        opt = f.create_group("optimizer")
        states = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq", "step")}.get(optimizer, ())
        for name, (shape, dtype) in PARAMETERS.items():
            for state in states:
                data = np.array(30, dtype=np.int64) if state == "step" else np.zeros(shape, dtype=dtype)
                opt.create_dataset(name.replace(".", "/") + "/" + state, data=data)
        f.create_group("metrics")["history_jsonl"] = np.bytes_(b'{"epoch":1,"top1":12.5}\n')


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "sgd.h5"))
    write(os.path.join(out, "adam.h5"), optimizer="adam")
    write(os.path.join(out, "no_optimizer.h5"), optimizer="")
    write(os.path.join(out, "gzip_shuffle.h5"), compress=True)
    write(os.path.join(out, "module_prefix.h5"), prefix="module.")


if __name__ == "__main__":
    main()
