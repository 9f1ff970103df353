#!/usr/bin/env python3
"""How honest is `stagewise plan`? Profiles each case's model on this machine (1 rank with all
cores, and 2 ranks under mpirun, one core each), plans every algorithm for 1 and 2 ranks on
configs/cluster/local.ini, trains each plan's chosen settings for real, and prints predicted vs
measured samples/s, idle and held memory side by side (markdown; docs/planning.md keeps a copy).
Not run by CI: a few minutes on 2 cores.

usage: tools/plan_check.py [--build build] [--out table.md] [--batches K] [--only ALGO,...]
"""
import argparse, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (config, extra keys, algorithms at 1 rank, algorithms at 2 ranks): every algorithm on a model
# it runs on (interlocking: two components, so that two ranks can hold them).
CASES = [
    ("configs/fmnist_lenet.ini", [], ["bp"], ["dp", "mp", "gpipe", "1f1b", "pipedream", "spectrain", "parle"]),
    ("configs/fmnist_petra.ini", [], ["petra"], ["petra"]),
    ("configs/fmnist_interlocking.ini", ["interlocking.blocks_per_component=2,rest", "interlocking.aux=conv32_bn_gbpl_fc"],
     [], ["interlocking", "local"]),
    ("configs/fmnist_dtp.ini", [], ["dtp"], ["dtp_parallel"]),
]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")


def run(cmd, ranks):
    full = (["mpirun", "-n", str(ranks), "--oversubscribe"] if ranks > 1 else []) + cmd
    r = subprocess.run(full, capture_output=True, text=True, env=ENV, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(" ".join(full) + "\n" + r.stdout[-2000:] + r.stderr[-2000:])
    return r.stdout


def batch_of(cfg):
    for line in open(os.path.join(ROOT, cfg)):
        k, _, v = line.partition("=")
        if k.strip() == "batch_size":
            return int(v)
    return 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default="")
    ap.add_argument("--batches", type=int, default=60, help="training batches per epoch of each measured run")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    exe = os.path.join(a.build, "stagewise")
    only = set(filter(None, a.only.split(",")))
    tmp = tempfile.mkdtemp(prefix="sw_plan_check_")
    cluster = os.path.join(ROOT, "configs", "cluster", "local.ini")
    rows = []
    for cfg, extra, one, two in CASES:
        b = batch_of(cfg)
        common = ["train.epochs=2", "data.limit_train=%d" % (b * a.batches), "data.limit_test=500",
                  "checkpoint.every_epochs=0"] + extra
        tag = os.path.splitext(os.path.basename(cfg))[0]
        for ranks, algos in ((1, one), (2, two)):
            algos = [x for x in algos if not only or x in only]
            if not algos:
                continue
            prof = os.path.join(tmp, "%s_%d.json" % (tag, ranks))
            run([exe, "profile", "--config", os.path.join(ROOT, cfg), "--out", prof] + common, ranks)
            pdir = os.path.join(tmp, "plan_%s_%d" % (tag, ranks))
            run([exe, "plan", "--profile", prof, "--cluster", cluster, "--ranks", str(ranks), "--algos",
                 ",".join(algos), "--out", pdir] + common, 1)
            plan = json.load(open(os.path.join(pdir, "plan.json")))
            for alg in plan["algorithms"]:
                if not alg["feasible"]:
                    rows.append((tag, alg["algo"], ranks, "-", "not planned: " + alg["why"], "", "", "", "", "", ""))
                    continue
                for p in alg["shapes"]:  # every shape's best candidate, the chosen one first
                    shape = "%dx%d M%d" % (p["stages"], p["replicas"], p["microbatches"])
                    rd = os.path.join(tmp, "run_%s_%s_%d_%s" % (tag, alg["algo"], ranks, shape.replace(" ", "")))
                    run([exe, "train", "--config", os.path.join(ROOT, cfg), "--out", rd] + common + p["overrides"], ranks)
                    recs = [json.loads(l) for l in open(os.path.join(rd, "metrics.jsonl"))]
                    tr = [r for r in recs if r.get("split") == "train"][-1]
                    meas_idle = tr.get("idle_max", 0.0)
                    held = [v for k, v in tr.items() if k.startswith("peak_held_mb_rank")]
                    meas_held = "%.1f" % max(held) if held else "n/a"
                    pred_held = max(p["held_bytes"]) / 2**20
                    dev = tr["samples_per_s"] / p["samples_per_s"] - 1
                    rows.append((tag, alg["algo"], ranks, shape, "%.0f" % p["samples_per_s"],
                                 "%.0f" % tr["samples_per_s"], "%+.1f%%" % (100 * dev), "%.1f%%" % (100 * max(p["idle"])),
                                 "%.1f%%" % (100 * meas_idle), "%.1f" % pred_held, meas_held))
                    print(" | ".join(str(x) for x in rows[-1]), file=sys.stderr, flush=True)
    head = ("| config | algorithm | ranks | plan | predicted samples/s | measured | deviation | predicted idle max "
            "| measured idle max | predicted held MB | measured held MB |\n|" + "---|" * 11 + "\n")
    table = head + "".join("| " + " | ".join(str(x) for x in r) + " |\n" for r in rows)
    print(table)
    if a.out:
        open(a.out, "w").write(table)


if __name__ == "__main__":
    main()
