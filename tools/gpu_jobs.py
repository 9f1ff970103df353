#!/usr/bin/env python3
"""Every algorithm as a real job on a device backend against the same job on the CPU: 4 ranks
(bp and dtp on 1) through launch/local.sh on small generated data, fixed seeds and a pinned
partition, then the final train/test loss and accuracy side by side. Used by tools/gpu_check.sh
(device cuda, ranks sharing the GPU); `--device cpu-staged` runs the same comparison through the
staging paths on a machine without a GPU.

usage: gpu_jobs.py STAGEWISE_BIN REPO_DIR OUT.json [--device cuda|cpu-staged] [--only a,b]
Exit 0 when every job ran on both sides and agrees (test loss within 2% relative and accuracy
within 3 points: cuDNN's algorithms sum in other orders than ours); 1 otherwise.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("bin")
p.add_argument("repo")
p.add_argument("out")
p.add_argument("--device", default="cuda")
p.add_argument("--only", default="")
a = p.parse_args()

SYN = ["data.name=synthetic", "data.synthetic_train=512", "data.synthetic_test=256", "train.batch_size=64",
       "train.epochs=2", "train.log_every_seconds=1000", "runtime.comm_timeout=120", "checkpoint.every_epochs=0",
       "pipe.balance=macs"]
LENET = SYN + ["model.name=lenet", "model.width=4"]
MLP = SYN + ["model.name=mlp", "model.hidden=64,64,64"]
JOBS = {  # name: (ranks, config, overrides)
    "bp": (1, "synthetic_mlp.ini", LENET + ["train.algo=bp"]),
    "dp": (4, "synthetic_mlp.ini", LENET + ["train.algo=dp"]),
    "1f1b": (4, "synthetic_mlp.ini", MLP + ["train.algo=1f1b", "pipe.microbatches=4"]),
    "pipedream": (4, "synthetic_mlp.ini", MLP + ["train.algo=pipedream"]),
    "spectrain": (4, "synthetic_mlp.ini", MLP + ["train.algo=spectrain", "optim.momentum=0.9"]),
    "petra": (4, "synthetic_mlp.ini", MLP + ["train.algo=petra"]),
    "interlocking": (4, "synthetic_mlp.ini", MLP + ["train.algo=interlocking", "interlocking.aux=fc"]),
    "parle": (4, "synthetic_mlp.ini", MLP + ["train.algo=parle", "parle.L=4"]),
    "dtp_parallel": (2, "fmnist_dtp_shallow.ini",
                     ["data.name=synthetic", "data.synthetic_train=128", "data.synthetic_test=64",
                      "data.synthetic_shape=1,32,32", "data.pad_to=0", "model.width=4", "train.batch_size=32",
                      "train.epochs=1", "train.log_every_seconds=1000", "train.algo=dtp_parallel",
                      "runtime.comm_timeout=120", "checkpoint.every_epochs=0"]),
}
only = [s for s in a.only.split(",") if s]


def run(name, device):
    ranks, config, args = JOBS[name]
    d = tempfile.mkdtemp(prefix=f"sw_gpujob_{name}_{device}_")
    env = dict(os.environ, STAGEWISE_BIN=a.bin, OMP_NUM_THREADS="1")
    t = time.time()
    p = subprocess.run(["bash", os.path.join(a.repo, "launch", "local.sh"), str(ranks),
                        os.path.join(a.repo, "configs", config)] + args + [f"runtime.device={device}", "--out", d],
                       env=env, capture_output=True, text=True, timeout=600)
    secs = time.time() - t
    rec = {"rc": p.returncode, "seconds": round(secs, 1)}
    if p.returncode != 0:
        rec["tail"] = (p.stdout + p.stderr)[-1500:]
        return rec
    with open(os.path.join(d, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    last = {r["split"]: r for r in rows}
    for split in ("train", "test"):
        if split in last:
            rec[split] = {"loss": last[split]["loss"], "acc": last[split]["acc"]}
    return rec


results, bad = {}, []
print(f"{'algo':<14} {'ranks':>5}  {'cpu test loss/acc':>20}  {a.device + ' test loss/acc':>22}  verdict")
for name in JOBS:
    if only and name not in only:
        continue
    cpu, dev = run(name, "cpu"), run(name, a.device)
    ok = cpu["rc"] == 0 and dev["rc"] == 0 and "test" in cpu and "test" in dev
    if ok:
        lc, ld = cpu["test"]["loss"], dev["test"]["loss"]
        ok = abs(lc - ld) <= 0.02 * max(abs(lc), 1e-6) and abs(cpu["test"]["acc"] - dev["test"]["acc"]) <= 0.03
    results[name] = {"cpu": cpu, a.device: dev, "agree": ok}
    fmt = lambda r: f"{r['test']['loss']:.4f}/{100 * r['test']['acc']:.1f}%" if "test" in r else f"exit {r['rc']}"
    print(f"{name:<14} {JOBS[name][0]:>5}  {fmt(cpu):>20}  {fmt(dev):>22}  {'ok' if ok else 'DIFFERENT'}", flush=True)
    if not ok:
        bad.append(name)
        for side in (cpu, dev):
            if side.get("tail"):
                print(side["tail"], file=sys.stderr)
with open(a.out, "w") as f:
    json.dump(results, f, indent=1)
if bad:
    sys.exit(f"gpu_jobs: {len(bad)} job(s) failed or disagree: {', '.join(bad)}")
print(f"gpu_jobs: all {len(results)} jobs agree")
