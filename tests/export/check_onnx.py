#!/usr/bin/python3
"""Structural checks of a `qhost export` model (tests/export).

usage: check_onnx.py MODEL.onnx [--weight-codes -3,-1,1,3] [--weight-scales tensor|channel]
                     [--activation-levels 4[,3]] [--level-codes 4] [--threshold-levels 4[,2]] [--batch N]

* onnx.checker.check_model (full check, with shape inference) passes;
* the graph has one input `input` and one output `logits` and only operators
  of the default domain from the list export writes;
* every DequantizeLinear of a weight dequantizes an int8/int32 initialiser;
  with --weight-codes, every such initialiser holds only those codes; with
  --weight-scales, every weight scale is one value (tensor) or a vector along
  the output channels (channel);
* with --activation-levels, every QuantizeLinear of an activation is preceded
  by a Clip (or Max/Min) whose bounds leave exactly that many codes.
* level-table weights (Gather of a float table by Cast(uint8 codes) [+ channel
  offsets]): with --level-codes L, there is at least one, every codes
  initialiser is uint8 and holds only values in [0, L), and every table has L
  entries per channel;
* threshold activations (chains of Greater/Less and Where): with
  --threshold-levels, there is at least one and every chain has one of those
  numbers of levels (its Where nodes plus one).
* the batch dimension of input and logits is `batch` (or N with --batch N).
Prints one summary line; exits 1 with the reasons on failure.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ALLOWED = {"Conv", "Gemm", "BatchNormalization", "Relu", "Clip", "Add", "Sub", "Mul", "Div", "GlobalAveragePool",
           "MaxPool", "AveragePool", "Flatten", "Pad", "Concat", "QuantizeLinear", "DequantizeLinear", "Max",
           "Min", "Identity", "Greater", "Less", "Where", "Gather", "Cast"}


def main(argv):
    path = argv[1]
    codes_expected = None
    levels_expected = None
    scales_expected = None
    level_codes = None
    threshold_levels = None
    batch = "batch"
    i = 2
    while i < len(argv):
        if argv[i] == "--weight-codes":
            codes_expected = sorted(int(c) for c in argv[i + 1].split(","))
            i += 2
        elif argv[i] == "--weight-scales":
            scales_expected = argv[i + 1]
            i += 2
        elif argv[i] == "--level-codes":
            level_codes = int(argv[i + 1])
            i += 2
        elif argv[i] == "--threshold-levels":
            threshold_levels = sorted(int(v) for v in argv[i + 1].split(","))
            i += 2
        elif argv[i] == "--batch":
            batch = int(argv[i + 1])
            i += 2
        elif argv[i] == "--activation-levels":
            levels_expected = sorted(int(v) for v in argv[i + 1].split(","))
            i += 2
        else:
            raise SystemExit("unknown argument " + argv[i])
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    errors = []
    if [x.name for x in g.input] != ["input"] or [x.name for x in g.output] != ["logits"]:
        errors.append("inputs/outputs are %s / %s" % ([x.name for x in g.input], [x.name for x in g.output]))
    for v in list(g.input) + list(g.output):
        d = v.type.tensor_type.shape.dim[0]
        found = d.dim_param if d.HasField("dim_param") else d.dim_value
        if found != batch:
            errors.append("%s: batch dimension %r, expected %r" % (v.name, found, batch))
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    ops = sorted({n.op_type for n in g.node})
    for n in g.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in ALLOWED:
            errors.append("operator %s (%s)" % (n.op_type, n.name))
    weights = activations = 0
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            weights += 1
            codes = inits[n.input[0]]
            if codes.dtype not in (np.int8, np.int32):
                errors.append("%s: weight codes of type %s" % (n.name, codes.dtype))
            scale = inits[n.input[1]]
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scales_expected == "tensor" and scale.size != 1:
                errors.append("%s: %d scales, expected one" % (n.name, scale.size))
            if scales_expected == "channel" and (scale.ndim != 1 or axis != 0 or scale.size != codes.shape[0]
                                                 or scale.size < 2):
                errors.append("%s: scale %s along axis %d, expected one per output channel" % (n.name, scale.shape, axis))
            if codes_expected is not None:
                found = sorted(int(c) for c in np.unique(codes))
                if not set(found) <= set(codes_expected):
                    errors.append("%s: codes %s, expected a subset of %s" % (n.name, found, codes_expected))
        if n.op_type == "QuantizeLinear":
            activations += 1
            scale = inits[n.input[1]].astype(np.float64)
            zero = inits[n.input[2]].astype(np.int64) if len(n.input) > 2 else 0
            src = producer.get(n.input[0])
            if src is not None and src.op_type == "Clip":
                lo, hi = inits[src.input[1]], inits[src.input[2]]
            elif src is not None and src.op_type == "Min" and producer.get(src.input[0]) is not None and \
                    producer[src.input[0]].op_type == "Max":
                lo, hi = inits[producer[src.input[0]].input[1]].ravel(), inits[src.input[1]].ravel()
            else:
                info = np.iinfo(inits[n.input[2]].dtype)
                lo, hi = (info.min - zero) * scale, (info.max - zero) * scale
            qlo = np.round(np.asarray(lo, np.float64) / scale) + zero
            qhi = np.round(np.asarray(hi, np.float64) / scale) + zero
            levels = np.unique(qhi - qlo + 1)
            if levels_expected is not None and not set(int(v) for v in levels) <= set(levels_expected):
                errors.append("%s: %s levels, expected %s" % (n.name or n.output[0], levels, levels_expected))
    # Level-table weights: Gather(table, [Add(] Cast(codes) [, offsets)]).
    level_weights = 0
    for n in g.node:
        if n.op_type != "Gather" or n.input[0] not in inits:
            continue
        level_weights += 1
        table = inits[n.input[0]]
        src = producer.get(n.input[1])
        offsets = None
        if src is not None and src.op_type == "Add":
            offsets = inits.get(src.input[1])
            src = producer.get(src.input[0])
        if src is None or src.op_type != "Cast" or src.input[0] not in inits:
            errors.append("%s: the level indices are not Cast(codes)" % n.name)
            continue
        codes = inits[src.input[0]]
        found = sorted(int(c) for c in np.unique(codes))
        if codes.dtype != np.uint8:
            errors.append("%s: level codes of type %s" % (n.name, codes.dtype))
        if level_codes is not None:
            per_table = table.size if offsets is None else table.size // offsets.size
            if not set(found) <= set(range(level_codes)) or per_table != level_codes:
                errors.append("%s: codes %s with %d levels per table, expected [0, %d)"
                              % (n.name, found, per_table, level_codes))
    if level_codes is not None and level_weights == 0:
        errors.append("no level-table weights")
    # Threshold activations: a Where whose output feeds no other Where ends a
    # chain; its length is the number of Where nodes walked back through their
    # third (Greater) or second (Less) input.
    where_users = {i for n in g.node if n.op_type == "Where" for i in n.input[1:]}
    chains = []
    for n in g.node:
        if n.op_type != "Where" or n.output[0] in where_users:
            continue
        length, node = 0, n
        while node is not None and node.op_type == "Where":
            length += 1
            cond = producer.get(node.input[0])
            prev = node.input[2] if cond is not None and cond.op_type == "Greater" else node.input[1]
            node = producer.get(prev)
        chains.append(length + 1)
    if threshold_levels is not None:
        if not chains:
            errors.append("no threshold activations")
        if not set(chains) <= set(threshold_levels):
            errors.append("threshold chains of %s levels, expected %s" % (sorted(set(chains)), threshold_levels))
    print("check_onnx: %s: checker OK, opset %d, %d nodes, %d quantized weights, %d activation QDQ pairs, "
          "%d level-table weights, %d threshold activations, ops %s"
          % (path, model.opset_import[0].version, len(g.node), weights, activations, level_weights, len(chains),
             ",".join(ops)))
    if errors:
        print("check_onnx: FAILED:\n  " + "\n  ".join(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
