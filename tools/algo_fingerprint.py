#!/usr/bin/python3
"""Fingerprints of a fixed-seed run of every algorithm: the metrics that do not depend on timing
(loss, accuracy, lr, algorithm extras) and a hash of every tensor in the final checkpoint. Used
around refactors: two trees that give the same fingerprints train bit-identically.

usage: algo_fingerprint.py STAGEWISE_BIN REPO_DIR OUT.json [--only NAME,...]
       algo_fingerprint.py --compare A.json B.json
Needs h5py (python3-h5py). Runs each job through launch/local.sh on small generated data.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

TIMING = ("samples_per_s", "wall_s", "idle", "wait_ms", "peak_rss", "peak_tensor", "_s_per_step",
          "peak_held")

SYN = ["pipe.balance=macs", "data.name=synthetic", "data.synthetic_train=256", "data.synthetic_test=128", "train.batch_size=32",
       "train.epochs=2", "train.log_every_seconds=1000", "runtime.comm_timeout=60"]
MLP = SYN + ["model.name=mlp", "model.hidden=32,32,32"]
LENET = SYN + ["model.name=lenet", "model.width=4"]
DTP = ["data.name=synthetic", "data.synthetic_train=64", "data.synthetic_test=32", "data.synthetic_shape=1,32,32",
       "data.pad_to=0", "data.mean=0.5", "data.std=0.3", "model.width=4", "train.batch_size=16",
       "train.epochs=2", "dtp.feedback_iterations=2,2,2,2,2", "train.log_every_seconds=1000"]

JOBS = {
    "bp": (1, "synthetic_mlp.ini", MLP + ["train.algo=bp"]),
    "bp_accum": (1, "synthetic_mlp.ini", MLP + ["train.algo=bp", "train.accum_steps=2"]),
    "dp": (2, "synthetic_mlp.ini", MLP + ["train.algo=dp"]),
    "mp": (2, "synthetic_mlp.ini", MLP + ["train.algo=mp"]),
    "gpipe": (2, "synthetic_mlp.ini", MLP + ["train.algo=gpipe", "pipe.microbatches=2"]),
    "1f1b": (2, "synthetic_mlp.ini", MLP + ["train.algo=1f1b", "pipe.microbatches=4"]),
    "1f1b_dp": (4, "synthetic_mlp.ini", MLP + ["train.algo=1f1b", "pipe.microbatches=2", "pipe.stages=2"]),
    "pipedream": (2, "synthetic_mlp.ini", MLP + ["train.algo=pipedream", "pipedream.drain_every=4"]),
    "spectrain": (2, "synthetic_mlp.ini", MLP + ["train.algo=spectrain", "pipedream.drain_every=4"]),
    "spectrain2": (2, "synthetic_mlp.ini", MLP + ["train.algo=spectrain", "spectrain.version=2"]),
    "petra": (2, "synthetic_mlp.ini", MLP + ["train.algo=petra"]),
    "petra_rev": (2, "fmnist_petra.ini", SYN + ["train.algo=petra", "model.width=4", "petra.drain_every=4"]),
    "petra_sync": (2, "synthetic_mlp.ini", MLP + ["train.algo=petra", "petra.synchronous=true"]),
    "petra_dsp": (2, "synthetic_mlp.ini", MLP + ["train.algo=petra", "petra.store_input=true",
                                                  "train.accum_steps=2"]),
    "interlocking": (4, "fmnist_interlocking.ini", LENET + ["train.algo=interlocking"]),
    "interlocking1": (1, "fmnist_interlocking.ini", LENET + ["train.algo=interlocking", "pipe.stages=1"]),
    "local": (4, "fmnist_interlocking.ini", LENET + ["train.algo=local"]),
    "parle": (2, "synthetic_mlp.ini", MLP + ["train.algo=parle", "parle.L=3"]),
    "elastic": (2, "synthetic_mlp.ini", MLP + ["train.algo=parle", "parle.mode=elastic"]),
    "dtp": (1, "fmnist_dtp.ini", DTP + ["train.algo=dtp"]),
    "dtp_parallel": (2, "fmnist_dtp.ini", DTP + ["train.algo=dtp_parallel"]),
}


def fingerprint(run_dir):
    import h5py
    recs = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            recs.append({k: v for k, v in r.items() if not any(t in k for t in TIMING)})
    ck = os.path.join(run_dir, "checkpoints")
    latest = open(os.path.join(ck, "LATEST")).read().strip()
    step = os.path.join(ck, latest) if not os.path.isabs(latest) else latest
    tensors = {}
    for fn in sorted(os.listdir(step)):
        if not fn.endswith(".h5"):
            continue
        with h5py.File(os.path.join(step, fn), "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    tensors[fn.split(".")[0].replace("parle_", "") + ":" + name] = \
                        hashlib.sha1(obj[()].tobytes()).hexdigest()[:16]
            f.visititems(visit)
    return {"metrics": recs, "tensors": tensors}


def compare(a, b):
    A, B = json.load(open(a)), json.load(open(b))
    bad = 0
    for name in sorted(set(A) | set(B)):
        if name not in A or name not in B:
            print(f"{name}: only in {'A' if name in A else 'B'}")
            continue
        x, y = A[name], B[name]
        if "error" in x or "error" in y:
            print(f"{name}: error A={x.get('error')} B={y.get('error')}")
            bad += 1
            continue
        dm = [i for i, (r, s) in enumerate(zip(x["metrics"], y["metrics"])) if r != s]
        common = set(x["tensors"]) & set(y["tensors"])
        dt = sorted(k for k in common if x["tensors"][k] != y["tensors"][k])
        only = sorted(set(x["tensors"]) ^ set(y["tensors"]))
        ok = not dm and not dt and len(x["metrics"]) == len(y["metrics"])
        bad += not ok
        print(f"{name}: {'same' if ok else 'DIFFERENT'}; metrics records differing {dm[:4]}, tensors differing "
              f"{len(dt)} of {len(common)}" + (f", tensors in one only: {len(only)}" if only else ""))
        if dm:
            r, s = x["metrics"][dm[0]], y["metrics"][dm[0]]
            print("   ", {k: (r.get(k), s.get(k)) for k in set(r) | set(s) if r.get(k) != s.get(k)})
    return bad


def main():
    if sys.argv[1] == "--compare":
        sys.exit(1 if compare(sys.argv[2], sys.argv[3]) else 0)
    binary, repo, out = sys.argv[1], sys.argv[2], sys.argv[3]
    only = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[4] == "--only" else None
    env = dict(os.environ, STAGEWISE_BIN=binary, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    res = {}
    tmp = tempfile.mkdtemp(prefix="sw_fp_")
    for name, (n, cfg, args) in JOBS.items():
        if only and name not in only:
            continue
        d = os.path.join(tmp, name)
        cmd = [os.path.join(repo, "launch", "local.sh"), str(n), os.path.join(repo, "configs", cfg)] + args + \
              ["--out", d]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            res[name] = {"error": f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}"}
        else:
            res[name] = fingerprint(d)
        print(name, "ok" if p.returncode == 0 else res[name]["error"], flush=True)
    json.dump(res, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
