#!/usr/bin/python3
"""Per-rank timeline picture of a schedule: which rank computes what, when, and where it idles.

  tools/plot_schedule.py --algo 1f1b --stages 4 --microbatches 8 --out 1f1b.png
  tools/plot_schedule.py --algo petra --stages 4 --microbatches 8 --extra=--accum=2 --out petra.png

Runs `stagewise schedule ... --events FILE` (the Validator's discrete-event simulation of all
ranks with unit forward cost and --backward-cost) and draws forwards, backwards and updates as
bars, one row per rank, micro-batch numbers inside; the title gives each rank's idle fraction.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("STAGEWISE_BIN", os.path.join(REPO, "build", "stagewise"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algo", required=True)
    ap.add_argument("--stages", type=int, default=4)
    ap.add_argument("--microbatches", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--backward-cost", type=float, default=2.0)
    ap.add_argument("--extra", action="append", default=[], help="more `stagewise schedule` flags")
    ap.add_argument("--out", required=True, help="PNG file")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_schedule: needs matplotlib (apt-get install python3-matplotlib)")
    with tempfile.TemporaryDirectory() as tmp:
        ev = os.path.join(tmp, "events.jsonl")
        cmd = [BIN, "schedule", "--algo", a.algo, "--stages", str(a.stages), "--microbatches", str(a.microbatches),
               "--replicas", str(a.replicas), "--backward-cost", str(a.backward_cost), "--events", ev] + a.extra
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"plot_schedule: {' '.join(cmd)} failed:\n{p.stdout[-1500:]}{p.stderr[-1500:]}")
        lines = [json.loads(l) for l in open(ev)]
    head, events = lines[0], lines[1:]
    ranks = a.stages * a.replicas
    colors = {"Forward": "#4c72b0", "Backward": "#dd8452", "OptimizerStep": "#55a868", "ReduceGrads": "#8172b3"}
    fig, ax = plt.subplots(figsize=(max(8, head["makespan"] * 0.35), 0.6 * ranks + 1.4))
    busy = [0.0] * ranks
    for e in events:
        r = e["rank"]
        w = e["end"] - e["start"]
        busy[r] += w
        ax.barh(r, w, left=e["start"], color=colors.get(e["op"], "#999999"), edgecolor="white", height=0.8)
        if e["mb"] >= 0 and w >= 0.6:
            ax.text(e["start"] + w / 2, r, str(e["mb"]), ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks(range(ranks))
    ax.set_yticklabels([f"rank {r}" for r in range(ranks)])
    ax.invert_yaxis()
    ax.set_xlabel("time (forward = 1)")
    span = head["makespan"] or 1
    idle = ", ".join(f"{100 * (1 - b / span):.0f}%" for b in busy)
    ax.set_title(f"{a.algo}: {a.stages} stages x {a.replicas} replicas, {a.microbatches} micro-batches; idle per rank {idle}",
                 fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, ["forward", "backward", "update", "allreduce"], loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
