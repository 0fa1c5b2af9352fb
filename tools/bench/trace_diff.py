#!/usr/bin/python3
"""Compare two chrome traces written by `train_step --profile` (or any LibTorch
profiler trace) by self time per operator: where does step B spend the time
that step A does not?

    /usr/bin/python3 tools/bench/trace_diff.py A.json B.json [--top 25]

Self time is an event's duration minus that of the events nested in it on the
same thread. Times are totals over the whole trace (train_step profiles two
steps), in milliseconds.
"""
import argparse
import collections
import json
import sys


def self_times(path):
    with open(path) as f:
        events = [e for e in json.load(f) if e.get("ph") == "X"]
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    totals = collections.Counter()
    counts = collections.Counter()
    for evs in by_thread.values():
        # Parents start no later and last no shorter than their children.
        evs.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack = []  # [end, name, child_time]

        def close(item):
            end, name, child, dur = item
            totals[name] += dur - child
            counts[name] += 1

        for e in evs:
            ts, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][0] <= ts:
                close(stack.pop())
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, e["name"], 0.0, dur])
        while stack:
            close(stack.pop())
    return totals, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    ta, ca = self_times(args.a)
    tb, cb = self_times(args.b)
    names = set(ta) | set(tb)
    rows = sorted(names, key=lambda n: -abs(tb[n] - ta[n]))
    print(f"{'operator':<48} {'A ms':>9} {'B ms':>9} {'B-A ms':>9} {'A n':>6} {'B n':>6}")
    for n in rows[: args.top]:
        print(f"{n[:48]:<48} {ta[n] / 1e3:9.2f} {tb[n] / 1e3:9.2f} {(tb[n] - ta[n]) / 1e3:9.2f} {ca[n]:6d} {cb[n]:6d}")
    sa, sb = sum(ta.values()), sum(tb.values())
    print(f"{'total self time':<48} {sa / 1e3:9.2f} {sb / 1e3:9.2f} {(sb - sa) / 1e3:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
