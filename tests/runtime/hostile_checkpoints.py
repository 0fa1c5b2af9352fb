#!/usr/bin/python3
"""Writes small hostile HDF5 checkpoints for the checkpoint hardening test.

usage: hostile_checkpoints.py TEMPLATE.h5 OUT_DIR

TEMPLATE.h5 is a valid qhost checkpoint (the test writes one with a smoke
run); every file written to OUT_DIR is a copy with one hostile change, so that
`qhost eval` gets as far as the hostile part. Each must end in
`error[checkpoint]: <file>: ...` with exit code 5 (README, exit codes); none
may crash, hang or allocate gigabytes. Besides the .h5 files, OUT_DIR gets:
  evil_plugins/          the folder that plugins_path.h5 names
  nonfinite.h5           also used to check --allow-nonfinite
Debian's python3-h5py and numpy only.
"""
import os
import re
import shutil
import sys

import h5py
import numpy as np


def first_float_weight(f):
    """Path of the first floating-point dataset with more than one element below /model."""
    found = []

    def visit(name, obj):
        if not found and isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size > 1:
            found.append("model/" + name)

    f["model"].visititems(visit)
    return found[0]


def main():
    template, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    written = []

    def variant(name, change):
        path = os.path.join(out, name + ".h5")
        shutil.copyfile(template, path)
        with h5py.File(path, "r+", libver="latest") as f:
            change(f)
        written.append(path)

    def set_attr(attr, value, dtype=None):
        def change(f):
            meta = f["meta"]
            del meta.attrs[attr]
            if dtype is None:
                meta.attrs[attr] = value
            else:
                meta.attrs.create(attr, value, dtype=dtype)
        return change

    # 1. Attributes of the wrong rank, type or size (H5Aread writes every element).
    variant("format_version_array", set_attr("format_version", np.ones(10000, dtype=np.int64)))
    variant("epoch_array", set_attr("epoch", np.arange(10000, dtype=np.int64)))
    variant("step_array", set_attr("step", np.arange(4096, dtype=np.int64)))
    variant("best_top1_array", set_attr("best_top1", np.zeros(10000, dtype=np.float64)))
    variant("epoch_string_1mib", set_attr("epoch", np.bytes_(b"7" * (1 << 20))))
    variant("qtool_version_vlen_array",
            set_attr("qtool_version", ["x" * 8] * 10000, dtype=h5py.string_dtype()))
    variant("rng_text_fixed_1mib", set_attr("rng_text", np.bytes_(b"r" * (1 << 20))))
    variant("rng_state_2d_float", set_attr("torch_rng_state", np.zeros((64, 64), dtype=np.float64)))

    def metrics_vlen_array(f):
        del f["metrics/history_jsonl"]
        f["metrics"].create_dataset("history_jsonl", data=["{}"] * 10000, dtype=h5py.string_dtype())
    variant("metrics_vlen_array", metrics_vlen_array)

    # 2. Links and storage outside the file.
    def hard_cycle(f):
        f["model"]["loop"] = f["model"]  # a hard link from /model to itself
    variant("hard_link_cycle", hard_cycle)

    def soft_cycle(f):
        f["model"]["loop"] = h5py.SoftLink("/model")
    variant("soft_link_cycle", soft_cycle)

    def external_link(f):
        f["model"]["stranger"] = h5py.ExternalLink(os.path.abspath(template), "/model")
    variant("external_link", external_link)

    def external_storage(f):
        w = first_float_weight(f)
        shape, dtype = f[w].shape, f[w].dtype
        del f[w]
        nbytes = int(np.prod(shape)) * dtype.itemsize
        f.create_dataset(w, shape=shape, dtype=dtype, external=[("/dev/zero", 0, nbytes)])
    variant("external_storage", external_storage)

    def virtual_dataset(f):
        w = first_float_weight(f)
        shape, dtype = f[w].shape, f[w].dtype
        del f[w]
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(os.path.abspath(template), w, shape=shape)
        f.create_virtual_dataset(w, layout)
    variant("virtual_dataset", virtual_dataset)

    # 3. Sizes and names: nothing may be allocated from the stored dims.
    def huge_unwritten(f):
        w = first_float_weight(f)
        del f[w]
        f.create_dataset(w, shape=(150000, 150000), dtype=np.float32)  # 84 GiB, never written
    variant("huge_unwritten_weight", huge_unwritten)

    def huge_extra(f):
        f["model"].create_dataset("extra/weight", shape=(150000, 150000), dtype=np.float32)
    variant("huge_unknown_entry", huge_extra)

    def huge_chunked(f):
        w = first_float_weight(f)
        del f[w]
        f.create_dataset(w, shape=(1 << 40,), dtype=np.float32, chunks=(1 << 16,), compression="gzip")
    variant("huge_compressed_weight", huge_chunked)

    def many_unknown(f):
        for i in range(200):
            f["model"].create_dataset("stranger%03d" % i, data=np.zeros(4, dtype=np.float32))
    variant("many_unknown_entries", many_unknown)

    def int_weight(f):
        w = first_float_weight(f)
        shape = f[w].shape
        del f[w]
        f.create_dataset(w, data=np.ones(shape, dtype=np.int8))
    variant("integer_weight", int_weight)

    def string_weight(f):
        w = first_float_weight(f)
        del f[w]
        f.create_dataset(w, data="not a tensor", dtype=h5py.string_dtype())
    variant("string_weight", string_weight)

    # 4. Plugins named by the stored configuration.
    evil = os.path.join(os.path.abspath(out), "evil_plugins")
    os.makedirs(evil, exist_ok=True)

    def plugin_path(f):
        meta = f["meta"]
        toml = meta.attrs["resolved_toml"]
        toml = toml.decode() if isinstance(toml, bytes) else str(toml)
        entry = 'path = ["%s"]' % evil
        section = re.search(r"^\[plugins\]\n(.*?)(?=^\[|\Z)", toml, re.S | re.M)
        if section is None:
            toml = "[plugins]\n%s\n\n%s" % (entry, toml)
        else:
            body = section.group(1)
            body = re.sub(r"^path\s*=.*$", entry, body, flags=re.M) if re.search(r"^path\s*=", body, re.M) \
                else entry + "\n" + body
            toml = toml[:section.start(1)] + body + toml[section.end(1):]
        del meta.attrs["resolved_toml"]
        meta.attrs["resolved_toml"] = np.bytes_(toml.encode())
    variant("plugins_path", plugin_path)

    # 5. Parameters holding NaN/inf.
    def nonfinite(f):
        w = first_float_weight(f)
        data = f[w][...]
        data.flat[0] = np.nan
        data.flat[-1] = np.inf
        f[w][...] = data
    variant("nonfinite", nonfinite)

    for p in written:
        print(p)


if __name__ == "__main__":
    main()
