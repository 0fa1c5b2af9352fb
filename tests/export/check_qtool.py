#!/usr/bin/python3
"""Checks of a `qhost export --format qtool` integer model (tests/export),
read with h5py and decoded by this script's own reading of
docs/integer-model.md (not qhost's), so the documented layout and bit order
are what is tested.

usage: check_qtool.py MODEL.qtool.h5 [--weight-codes -3,-1,1,3] [--bits N]
                      [--level-codes N] [--threshold-levels N] [--bn-from CHECKPOINT.h5]
       check_qtool.py MODEL.qtool.h5 --corrupt truncate|padding|nan|shape|version1|nan-threshold OUT.h5
       check_qtool.py --logits CHECKPOINT.npy INTEGER.npy [ALLOWED]
       check_qtool.py --edit-toml CHECKPOINT.h5 OLD NEW OUT.h5

Check mode: /meta says content "integer-model", version 1, or 2 exactly when
an activation has a threshold form; every /integer/<layer>/weight unpacks
(LSB-first bit stream) to codes offset + stride * u of the stored shape, with
one finite scale or a finite level table of 2^bits entries per row; with
--weight-codes every affine code is one of those; with --bits every layer packs
with that many bits; with --level-codes N there is a level-table weight and all
its codes are below N; every activation/output range holds its zero point, or
its threshold form has [L - 1] thresholds for [L] levels (with
--threshold-levels N: there is one, and L = N); with --bn-from, every folded
batch norm is recomputed from the checkpoint's own tensors (the norm <name>.bnK[.i]
after the convolution <name>.convK[.i] (the stem: bn1.0 after conv1), or the next module <name>.(i+1) of a
sequence, as qhost's ResNets name them; the layer's bias if it has one) and must match to float rounding, at least one
when the model has quantized weights.
Prints one summary line; exits 1 with the reasons on failure.

Logits mode: the two float32 [samples, classes] dumps of `qhost eval
--dump-logits` must have the same shape, the same argmax in every row, and
max |a - b| <= 1e-5 * (1 + max |a|), except in at most ALLOWED rows (default
0): an activation within float rounding of a rounding boundary may take the
neighbouring code in one of the two (README "Deploy"), and a low-bit network
carries that jump to the logits of that sample. Prints the measured
differences.

Edit mode: copies a checkpoint with OLD replaced by NEW (once) in its stored
configuration (/meta resolved_toml), as `--set` would on the command line
(`qhost export --format qtool` takes no --set).

Corrupt mode: copies MODEL to OUT with the first quantized layer's weight
damaged (truncate: one byte less of codes; padding: a bit set past the last
code, in the first layer whose codes leave unused bits; nan: a NaN scale;
shape: codes of 2^20 bytes), or the first activation threshold form (version1:
the file stamped layout 1, which has none; nan-threshold: a NaN threshold),
and prints the layer's path.
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


def first_threshold_layer(f):
    for layer in sorted(f["integer"].keys()):
        if "activation" in f["integer"][layer] and "thresholds" in f["integer"][layer]["activation"]:
            return layer
    raise SystemExit("no activation threshold form")


def corrupt(src, how, out):
    shutil.copyfile(src, out)
    with h5py.File(out, "r+") as f:
        if how in ("version1", "nan-threshold"):
            layer = first_threshold_layer(f)
            if how == "version1":
                f["meta"].attrs.modify("content_version", np.int64(1))
            else:
                a = f["integer"][layer]["activation"]
                t = a["thresholds"][()]
                t.flat[0] = np.nan
                a["thresholds"][...] = t
            print(layer)
            return
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


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def compare_logits(a_path, b_path, allowed):
    a, b = np.load(a_path), np.load(b_path)
    if a.dtype != np.float32 or a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        print(f"logits FAILED: shapes {a.shape} {a.dtype} and {b.shape} {b.dtype}")
        return 1
    per_sample = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), axis=1)
    bound = 1e-5 * (1 + float(np.max(np.abs(a))))
    over = per_sample > bound
    argmax = np.argmax(a, axis=1) != np.argmax(b, axis=1)
    # The samples allowed to differ are exempt from both checks; all others must agree exactly.
    ok = int(np.sum(over | argmax)) <= allowed
    rest = float(np.max(per_sample[~over])) if np.any(~over) else 0.0
    print(f"logits {'OK' if ok else 'FAILED'}: {a.shape[0]} samples x {a.shape[1]} classes, argmax differs on "
          f"{int(np.sum(argmax))}, {int(np.sum(over))} samples over the bound (allowed {allowed}), "
          f"max |diff| {float(np.max(per_sample)):.3g}, of the others {rest:.3g} "
          f"(bound {bound:.3g}, max |logit| {float(np.max(np.abs(a))):.4g})")
    return 0 if ok else 1


def edit_toml(src, old, new, out):
    shutil.copyfile(src, out)
    with h5py.File(out, "r+") as f:
        toml = text(f["meta"].attrs["resolved_toml"])
        if toml.count(old) != 1:
            raise SystemExit(f"{old!r} occurs {toml.count(old)} times in the stored configuration")
        # A fixed-length ASCII string, as qhost writes its attributes (not h5py's variable-length default).
        f["meta"].attrs["resolved_toml"] = np.bytes_(toml.replace(old, new).encode())


def check_norm(ckpt, layer, bn, errors):
    """Recomputes the folded pair of `layer` from the checkpoint's batch norm."""
    parts = layer.split(".")
    candidates = []
    for j in range(len(parts) - 1, -1, -1):
        if parts[j].startswith("conv"):
            named = parts[:j] + ["bn" + parts[j][4:]] + parts[j + 1:]
            candidates += [named, named + ["0"]]  # the stem's norm is bn1.0 after conv1
            break
    if parts[-1].isdigit():
        candidates.append(parts[:-1] + [str(int(parts[-1]) + 1)])
    norms = ["/".join(["model"] + c) for c in candidates]
    norms = [n for n in norms if n in ckpt and "running_mean" in ckpt[n]]
    conv = "/".join(["model"] + parts)
    if len(norms) != 1:
        errors.append(f"{layer}: no single batch norm after it in the checkpoint (tried <...>.bnK[.i], the next index)")
        return False
    norm = norms[0]
    g = ckpt[norm]
    gamma, beta = g["weight"][()].astype(np.float64), g["bias"][()].astype(np.float64)
    mean, var = g["running_mean"][()].astype(np.float64), g["running_var"][()].astype(np.float64)
    bias = ckpt[conv]["bias"][()].astype(np.float64) if "bias" in ckpt[conv] else np.zeros_like(mean)
    eps = 1e-5  # torch::nn::BatchNorm2d's default, which qhost's ResNets keep
    scale = gamma / np.sqrt(var + eps)
    shift = beta + (bias - mean) * scale
    for name, want in (("scale", scale), ("shift", shift)):
        got = bn[name][()].astype(np.float64)
        tol = 1e-5 * (1 + np.max(np.abs(want)))
        if got.shape != want.shape or np.max(np.abs(got - want)) > tol:
            errors.append(f"{layer}/bn/{name}: differs from the checkpoint's {norm} by "
                          f"{np.max(np.abs(got - want)) if got.shape == want.shape else got.shape}")
            return False
    return True


def check(path, argv):
    codes_expected = None
    bits_expected = None
    level_codes = None
    threshold_levels = None
    bn_from = None
    i = 0
    while i < len(argv):
        if argv[i] == "--weight-codes":
            codes_expected = sorted(int(c) for c in argv[i + 1].split(","))
        elif argv[i] == "--bits":
            bits_expected = int(argv[i + 1])
        elif argv[i] == "--level-codes":
            level_codes = int(argv[i + 1])
        elif argv[i] == "--threshold-levels":
            threshold_levels = int(argv[i + 1])
        elif argv[i] == "--bn-from":
            bn_from = argv[i + 1]
        else:
            raise SystemExit("unknown option " + argv[i])
        i += 2
    errors = []
    weights = activations = norms = level_weights = threshold_forms = verified_norms = 0
    ckpt = h5py.File(bn_from, "r") if bn_from else None
    with h5py.File(path, "r") as f:
        meta = f["meta"].attrs
        content = text(meta["content"])
        version = int(meta["content_version"])
        has_thresholds = any(t in g and "thresholds" in g[t] for g in f["integer"].values()
                             for t in ("activation", "output"))
        if content != "integer-model" or version != (2 if has_thresholds else 1):
            errors.append(f"/meta content {content!r} version {version} (threshold forms: {has_thresholds})")
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
                if bits_expected is not None and bits != bits_expected:
                    errors.append(f"{layer}: packed with {bits} bits, expected {bits_expected}")
                if ("scale" in w) == ("levels" in w):
                    errors.append(f"{layer}: not exactly one of scale and levels")
                elif "levels" in w:
                    # Non-uniform: weight = levels[u] (per output channel: levels[c][u]).
                    levels = w["levels"][()]
                    if (int(w["offset"][()]), int(w["stride"][()])) != (0, 1) or levels.shape[-1] != 1 << bits:
                        errors.append(f"{layer}: level table {levels.shape} for {bits} bits, offset/stride not 0/1")
                    if not np.all(np.isfinite(levels)):
                        errors.append(f"{layer}: level table not finite")
                    if level_codes is not None and seen[-1] >= level_codes:
                        errors.append(f"{layer}: level codes {seen[:8]}, expected [0, {level_codes})")
                    level_weights += 1
                else:
                    if codes_expected is not None and not set(seen) <= set(codes_expected):
                        errors.append(f"{layer}: codes {seen[:8]} not within {codes_expected}")
                    if not np.all(np.isfinite(w["scale"][()])):
                        errors.append(f"{layer}: no finite scale")
                weights += 1
            for target in ("activation", "output"):
                if target in g:
                    a = g[target]
                    if "thresholds" in a:
                        t, lv = a["thresholds"][()], a["levels"][()]
                        if t.ndim != lv.ndim or t.shape[-1] != lv.shape[-1] - 1 or t.shape[:-1] != lv.shape[:-1]:
                            errors.append(f"{layer}/{target}: thresholds {t.shape} for levels {lv.shape}")
                        if threshold_levels is not None and lv.shape[-1] != threshold_levels:
                            errors.append(f"{layer}/{target}: {lv.shape[-1]} levels, expected {threshold_levels}")
                        if int(a["upper_at_ties"][()]) not in (0, 1) or np.any(np.isnan(t)):
                            errors.append(f"{layer}/{target}: upper_at_ties not 0/1 or NaN thresholds")
                        threshold_forms += 1
                    elif not int(a["qmin"][()]) <= int(a["zero_point"][()]) <= int(a["qmax"][()]):
                        errors.append(f"{layer}/{target}: zero point outside [qmin, qmax]")
                    activations += 1
            if "bn" in g:
                norms += 1
                if ckpt is not None and check_norm(ckpt, layer, g["bn"], errors):
                    verified_norms += 1
    if level_codes is not None and level_weights == 0:
        errors.append("no weight with a level table")
    if threshold_levels is not None and threshold_forms == 0:
        errors.append("no activation with a threshold form")
    # Folded norms belong to quantized weights (a model with quantized activations only has none).
    if ckpt is not None and weights > 0 and verified_norms == 0:
        errors.append("no folded batch norm to verify")
    if errors:
        print("check_qtool FAILED:\n  " + "\n  ".join(errors))
        return 1
    print(f"check_qtool OK: {weights} weights ({level_weights} level tables), {activations} activation quantizers "
          f"({threshold_forms} threshold forms), {norms} folded batch norms ({verified_norms} verified)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--logits":
        sys.exit(compare_logits(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else 0))
    if len(sys.argv) == 6 and sys.argv[1] == "--edit-toml":
        edit_toml(*sys.argv[2:])
        sys.exit(0)
    if len(sys.argv) >= 4 and sys.argv[2] == "--corrupt":
        corrupt(sys.argv[1], sys.argv[3], sys.argv[4])
        sys.exit(0)
    sys.exit(check(sys.argv[1], sys.argv[2:]))
