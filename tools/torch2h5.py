#!/usr/bin/python3
"""Convert a PyTorch state dict to qtool's HDF5 checkpoint layout.

Input: a torchvision ResNet .pth (a plain state dict), a QTool checkpoint (a dict
with 'state_dict', keys possibly prefixed with 'module.' by DataParallel), or a
pickled nn.Module. Output: one dataset per tensor at
/model/<dotted/path/with/dots/as/slashes> (floating tensors as float32, integer
tensors as int64, bool as uint8 marked torch_dtype = "bool") and a /meta group
with format_version = 1 and the other attributes qhost's checkpoint reader
expects (epoch 0, empty config): a weights-only checkpoint for `[train] init_from`,
or for `qhost eval --config EXPERIMENT.toml` (the experiment describes the model,
its quantizers and the data; the weights come from the file; loaded strictly).

  /usr/bin/python3 tools/torch2h5.py resnet18-f37072fd.pth resnet18.h5
  qhost eval resnet18.h5 --config experiments/fp/imagenet_resnet18_torch.toml
  /usr/bin/python3 tools/torch2h5.py qtool_best.pth best.h5 --map torchvision-to-flexible

--map torchvision-to-flexible renames torchvision ResNet names to the flexible
`resnet` plugin's names (docs/models.md#parameter-names: bn1.* -> bn1.0.*, layerX.Y.convN.weight ->
layerX.Y.convN.0.weight, layerX.Y.bnN.* -> layerX.Y.bnN.0.*,
downsample.0/1 -> skip.1/2), as used to start the flexible cbsa model from
torchvision weights.
"""
import argparse
import re
import sys

FORMAT_VERSION = 1

_TV_TO_FLEX = [
    (re.compile(r"^bn1\.(.*)$"), r"bn1.0.\1"),
    (re.compile(r"^(layer\d+\.\d+)\.(conv\d)\.weight$"), r"\1.\2.0.weight"),
    (re.compile(r"^(layer\d+\.\d+)\.(bn\d)\.(.*)$"), r"\1.\2.0.\3"),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.0\.(.*)$"), r"\1.skip.1.\2"),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.1\.(.*)$"), r"\1.skip.2.\2"),
]


def torchvision_to_flexible(name):
    for pattern, repl in _TV_TO_FLEX:
        if pattern.match(name):
            return pattern.sub(repl, name)
    return name


def load_state_dict(path):
    import torch

    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SystemExit(f"error: {path}: not a state dict (found {type(obj).__name__})")
    out = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue  # optimizer scalars etc. that some checkpoints mix in
        name = key[len("module."):] if key.startswith("module.") else key
        out[name] = value.detach().cpu()
    if not out:
        raise SystemExit(f"error: {path}: no tensors found")
    return out


def _string_attr(obj, name, value):
    """A variable-length ASCII string attribute (what qhost's HDF5 C reader converts)."""
    import h5py

    obj.attrs.create(name, str(value).encode("ascii", "replace"), dtype=h5py.string_dtype("ascii"))


def write_h5(state, path, source):
    import h5py
    import numpy as np
    import torch

    with h5py.File(path, "w") as f:
        meta = f.create_group("meta")
        # The attributes qhost's checkpoint reader requires; a converted file is
        # a weights-only checkpoint (epoch 0, no config, no optimizer state), so it
        # serves `[train] init_from` and tools, not `--resume`.
        meta.attrs["format_version"] = np.int64(FORMAT_VERSION)
        _string_attr(meta, "qtool_version", "converted by tools/torch2h5.py")
        _string_attr(meta, "sdk_version", "")
        _string_attr(meta, "torch_version", torch.__version__.split("+")[0])
        meta.attrs["epoch"] = np.int64(0)
        meta.attrs["step"] = np.int64(0)
        meta.attrs["best_top1"] = np.float64(0.0)
        _string_attr(meta, "resolved_toml", "")
        _string_attr(meta, "optimizer_type", "")
        _string_attr(meta, "rng_text", "")
        _string_attr(meta, "source", source)
        model = f.create_group("model")
        for name, tensor in state.items():
            if tensor.is_floating_point():
                array = tensor.to(torch.float32).numpy()
            elif tensor.dtype == torch.bool:
                array = tensor.to(torch.uint8).numpy()
            else:
                array = tensor.to(torch.int64).numpy()
            dataset = model.create_dataset(name.replace(".", "/"), data=array)
            if tensor.dtype == torch.bool:
                _string_attr(dataset, "torch_dtype", "bool")  # as qhost marks bool tensors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="PyTorch .pth / .pth.tar file")
    parser.add_argument("output", help="HDF5 file to write")
    parser.add_argument("--map", choices=["none", "torchvision-to-flexible"], default="none",
                        help="rename parameters (default: keep names)")
    args = parser.parse_args(argv)
    state = load_state_dict(args.input)
    if args.map == "torchvision-to-flexible":
        state = {torchvision_to_flexible(k): v for k, v in state.items()}
    write_h5(state, args.output, args.input)
    print(f"wrote {len(state)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
