#!/usr/bin/python3
"""Test accuracy against epoch and against wall-clock time for one or more run directories.

  tools/plot_runs.py runs/bp runs/pipedream runs/petra --out accuracy.png [--labels bp,pd,petra]

Reads each DIR/metrics.jsonl (the "test" records: epoch, acc, wall_s) and draws two panels into
one PNG, the comparison the research systems publish. Labels default to the directory name and
train.algo from DIR/config.ini.
"""
import argparse
import json
import os
import re
import sys


def load(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"plot_runs: {path}: no metrics (is {run} a stagewise run directory?)")
    recs = [json.loads(l) for l in open(path) if l.strip()]
    test = [r for r in recs if r.get("split") == "test"]
    if not test:
        sys.exit(f"plot_runs: {path}: no test records yet")
    algo = ""
    cfg = os.path.join(run, "config.ini")
    if os.path.exists(cfg):
        m = re.search(r"^algo\s*=\s*(\S+)", open(cfg).read(), re.M)
        algo = m.group(1) if m else ""
    return test, algo


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--labels", default="")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_runs: needs matplotlib (apt-get install python3-matplotlib)")
    labels = a.labels.split(",") if a.labels else []
    fig, (e_ax, t_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(a.runs):
        test, algo = load(run)
        label = labels[i] if i < len(labels) else f"{os.path.basename(os.path.normpath(run))} ({algo})"
        epochs = [r["epoch"] + 1 for r in test]
        acc = [100 * r["acc"] for r in test]
        wall = [r.get("wall_s", r.get("wall_sec", 0)) for r in test]
        e_ax.plot(epochs, acc, marker="o", label=label)
        t_ax.plot(wall, acc, marker="o", label=label)
    e_ax.set_xlabel("epoch")
    t_ax.set_xlabel("wall-clock seconds")
    for ax in (e_ax, t_ax):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    e_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
