#!/usr/bin/python3
"""Convert a qtool HDF5 checkpoint (/model/...) back to a PyTorch state dict.

Every dataset under /model becomes a tensor named by its path with '/' turned
into '.', so /model/layer1/0/conv1/weight -> layer1.0.conv1.weight. Datasets of
other groups (/optimizer, /metrics) are ignored.

  /usr/bin/python3 tools/h5totorch.py best.h5 best.pth            # plain state dict
  /usr/bin/python3 tools/h5totorch.py best.h5 best.pth --wrap     # {'state_dict': ...} like QTool
"""
import argparse
import collections
import sys


def read_h5(path):
    import h5py
    import torch

    state = collections.OrderedDict()
    with h5py.File(path, "r") as f:
        if "model" not in f:
            raise SystemExit(f"error: {path}: no /model group (not a qtool checkpoint?)")
        version = f["meta"].attrs.get("format_version") if "meta" in f else None
        if version is not None and int(version) != 1:
            raise SystemExit(f"error: {path}: format_version {int(version)} is not supported (expected 1)")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                tensor = torch.from_numpy(value.copy()) if obj.shape != () else torch.tensor(value)
                if obj.attrs.get("torch_dtype") == "bool":
                    tensor = tensor.to(torch.bool)
                state[name.replace("/", ".")] = tensor

        f["model"].visititems(visit)
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="qtool HDF5 checkpoint")
    parser.add_argument("output", help=".pth file to write")
    parser.add_argument("--wrap", action="store_true", help="save as {'state_dict': ...}")
    args = parser.parse_args(argv)
    import torch

    state = read_h5(args.input)
    torch.save({"state_dict": state} if args.wrap else state, args.output)
    print(f"wrote {len(state)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
