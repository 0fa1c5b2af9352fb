#!/usr/bin/python3
"""Checks of a `qhost export --format qtool` integer model (tests/export),
read with h5py and decoded by this script's own reading of
docs/integer-model.md (not qhost's), so the documented layout and bit order
are what is tested.

usage: check_qtool.py MODEL.qtool.h5 [--weight-codes -3,-1,1,3] [--bits N]
       check_qtool.py MODEL.qtool.h5 --corrupt truncate|padding|nan|shape OUT.h5

Check mode: /meta says content "integer-model", version 1; every
/integer/<layer>/weight unpacks (LSB-first bit stream) to codes
offset + stride * u of the stored shape; with --weight-codes every code is one
of those; with --bits every layer packs with that many bits; every
activation/output range holds its zero point. Prints one summary line; exits 1
with the reasons on failure.

Corrupt mode: copies MODEL to OUT with the first quantized layer's weight
damaged (truncate: one byte less of codes; padding: a bit set past the last
code, in the first layer whose codes leave unused bits; nan: a NaN scale;
shape: codes of 2^20 bytes) and prints the layer's path.
"""
import shutil
import sys

import h5py
import numpy as np


def unpack(packed, count, bits):
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    stream = stream[: count * bits].reshape(count, bits).astype(np.int64)
    return (stream << np.arange(bits, dtype=np.int64)).sum(axis=1)


def padding_bits(w):
    return (int(np.prod(w["shape"][()])) * int(w["bits"][()])) % 8


def first_weight_layer(f, with_padding):
    for layer in sorted(f["integer"].keys()):
        g = f["integer"][layer]
        if "weight" in g and (not with_padding or padding_bits(g["weight"]) != 0):
            return layer
    raise SystemExit("no quantized weight" + (" with padding bits" if with_padding else ""))


def corrupt(src, how, out):
    shutil.copyfile(src, out)
    with h5py.File(out, "r+") as f:
        layer = first_weight_layer(f, how == "padding")
        g = f["integer"][layer]["weight"]
        codes = g["codes"][()]
        if how == "truncate":
            del g["codes"]
            g.create_dataset("codes", data=codes[:-1])
        elif how == "padding":
            codes[-1] |= np.uint8(1 << 7)
            g["codes"][...] = codes
        elif how == "nan":
            s = g["scale"][()]
            s[0] = np.nan
            g["scale"][...] = s
        elif how == "shape":
            del g["codes"]
            g.create_dataset("codes", shape=(1 << 20,), dtype=np.uint8)
        else:
            raise SystemExit("unknown corruption " + how)
    print(layer)


def check(path, argv):
    codes_expected = None
    bits_expected = None
    i = 0
    while i < len(argv):
        if argv[i] == "--weight-codes":
            codes_expected = sorted(int(c) for c in argv[i + 1].split(","))
        elif argv[i] == "--bits":
            bits_expected = int(argv[i + 1])
        else:
            raise SystemExit("unknown option " + argv[i])
        i += 2
    errors = []
    weights = activations = norms = 0
    with h5py.File(path, "r") as f:
        meta = f["meta"].attrs
        content = meta["content"]
        content = content.decode() if isinstance(content, bytes) else content
        if content != "integer-model" or int(meta["content_version"]) != 1:
            errors.append(f"/meta content {content!r} version {meta['content_version']}")
        for layer, g in sorted(f["integer"].items()):
            if "weight" in g:
                w = g["weight"]
                shape = tuple(int(d) for d in w["shape"][()])
                bits = int(w["bits"][()])
                count = int(np.prod(shape))
                packed = w["codes"][()]
                if len(packed) != (count * bits + 7) // 8:
                    errors.append(f"{layer}: {len(packed)} bytes for {count} codes of {bits} bits")
                    continue
                u = unpack(packed, count, bits)
                codes = int(w["offset"][()]) + int(w["stride"][()]) * u
                seen = sorted(set(codes.tolist()))
                if codes_expected is not None and not set(seen) <= set(codes_expected):
                    errors.append(f"{layer}: codes {seen[:8]} not within {codes_expected}")
                if bits_expected is not None and bits != bits_expected:
                    errors.append(f"{layer}: packed with {bits} bits, expected {bits_expected}")
                if "scale" not in w or not np.all(np.isfinite(w["scale"][()])):
                    errors.append(f"{layer}: no finite scale")
                weights += 1
            for target in ("activation", "output"):
                if target in g:
                    a = g[target]
                    if not int(a["qmin"][()]) <= int(a["zero_point"][()]) <= int(a["qmax"][()]):
                        errors.append(f"{layer}/{target}: zero point outside [qmin, qmax]")
                    activations += 1
            if "bn" in g:
                norms += 1
    if errors:
        print("check_qtool FAILED:\n  " + "\n  ".join(errors))
        return 1
    print(f"check_qtool OK: {weights} weights, {activations} activation quantizers, {norms} folded batch norms")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[2] == "--corrupt":
        corrupt(sys.argv[1], sys.argv[3], sys.argv[4])
        sys.exit(0)
    sys.exit(check(sys.argv[1], sys.argv[2:]))
