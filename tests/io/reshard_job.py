#!/usr/bin/env python3
"""Resume on another shape (real mpirun jobs through launch/local.sh, generated data): a run
checkpointed by one topology continues on another and its loss continues where it was.
- a 4-stage GPipe pipeline resumed on 2 stages and on 1 rank: GPipe is exact backprop whatever
  the cut, so the next epoch's loss equals the same-shape continuation's (to float reassociation);
- dp on 2 replicas resumed on 3 (a batch of 64 split 22/21/21): equal to dp continuing on 2;
- pipedream on 2 ranks resumed on 1, interlocking on 4 resumed on 2 (the heads at the new cuts
  start fresh), parle on 2 replicas resumed on 1 and dtp on 2 ranks on 3: the loss continues
  (it keeps at least half the progress over epoch 0 that the same-shape continuation shows);
- the same shape stays bit-identical (epoch 2 of an interrupted run == an uninterrupted run);
- `stagewise checkpoint inspect` says which rank holds which blocks.
usage: reshard_job.py STAGEWISE_BIN REPO_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from jobcheck import JobCheck, from_argv  # noqa: E402

BIN, REPO, J = from_argv("synthetic_mlp.ini")
BASE = ["model.hidden=64,48,32", "data.synthetic_train=1024", "data.synthetic_test=256", "runtime.comm_timeout=30",
        "train.log_every_seconds=1000", "pipe.balance=macs"]
check = J.check
tmp = tempfile.mkdtemp(prefix="sw_reshard_")


def train_losses(d):
    return {r["epoch"]: r["loss"] for r in J.records(d) if r["split"] == "train"}


DTP = JobCheck(J.local, os.path.join(REPO, "configs", "fmnist_dtp.ini"), J.env)
DTP_BASE = ["data.name=synthetic", "data.synthetic_train=256", "data.synthetic_test=64", "data.synthetic_shape=1,32,32",
            "data.pad_to=0", "data.mean=0.5", "data.std=0.3", "model.width=4", "train.batch_size=16",
            "dtp.feedback_iterations=2,2,2,2,2", "runtime.comm_timeout=30", "train.log_every_seconds=1000"]


def run(name, args, ranks, resume=None, epochs=1):
    d = os.path.join(tmp, name)
    if resume:
        shutil.copytree(resume, d)
    job, base = (DTP, DTP_BASE) if any(a.startswith("train.algo=dtp") for a in args) else (J, BASE)
    cmd = base + args + [f"train.epochs={epochs}", "--resume" if resume else "--out", d]
    rc, secs, out = job.run(cmd, ranks=ranks, timeout=240)
    check(rc == 0, f"{name}: exit 0 on {ranks} rank(s) (got {rc})" + (f"\n{out[-2500:]}" if rc else ""))
    return d, out


try:
    # GPipe: 4 stages -> 2 stages, 1 rank; reference: continue on 4.
    gp = ["train.algo=gpipe", "pipe.microbatches=4"]
    a, _ = run("gpipe4", gp, 4)
    ref, _ = run("gpipe4_4", gp, 4, resume=a, epochs=2)
    r2, out2 = run("gpipe4_2", gp, 2, resume=a, epochs=2)
    r1, _ = run("gpipe4_1", gp, 1, resume=a, epochs=2)
    check("resharding: checkpoint written by 4 rank(s) = 1 replica(s) x 4 stage(s)" in out2,
          "gpipe 4 -> 2: the start-up line says what wrote the checkpoint")
    L0, Lref = train_losses(a)[0], train_losses(ref).get(1)
    for name, d in (("2 stages", r2), ("1 rank", r1)):
        L = train_losses(d).get(1)
        check(L is not None and Lref is not None and abs(L - Lref) <= 1e-4 * abs(Lref),
              f"gpipe 4 -> {name}: epoch-1 loss {L} equals the same-shape continuation's {Lref}")
    check(Lref is not None and Lref < L0, f"gpipe: the continued loss {Lref} is below epoch 0's {L0}")

    # Same shape: bit-identical to an uninterrupted run.
    full, _ = run("gpipe4_full", gp, 4, epochs=2)
    check(train_losses(full).get(1) == Lref,
          f"same shape: resumed epoch-1 loss {Lref} == uninterrupted {train_losses(full).get(1)} (bit for bit)")

    # dp: 2 replicas -> 3 (uneven split) against continuing on 2.
    a, _ = run("dp2", ["train.algo=dp"], 2)
    ref, _ = run("dp2_2", ["train.algo=dp"], 2, resume=a, epochs=2)
    r3, out3 = run("dp2_3", ["train.algo=dp"], 3, resume=a, epochs=2)
    L, Lref = train_losses(r3).get(1), train_losses(ref).get(1)
    check(L is not None and Lref is not None and abs(L - Lref) <= 1e-4 * abs(Lref),
          f"dp 2 -> 3 replicas: epoch-1 loss {L} equals continuing on 2 ({Lref})")

    # Algorithms with state of their own or other cuts: the loss continues.
    for name, algo, n_from, n_to in (("pipedream", ["train.algo=pipedream"], 2, 1),
                                     ("interlocking", ["train.algo=interlocking"], 4, 2),
                                     ("parle", ["train.algo=parle"], 2, 1),
                                     ("dtp", ["train.algo=dtp_parallel"], 2, 3)):
        a, _ = run(name, algo, n_from)
        ref, _ = run(f"{name}_{n_from}", algo, n_from, resume=a, epochs=2)
        b, out = run(f"{name}_{n_to}", algo, n_to, resume=a, epochs=2)
        L0, L1, Lref = train_losses(a).get(0), train_losses(b).get(1), train_losses(ref).get(1)
        # Continues: keeps at least half of the progress the same-shape continuation shows over
        # epoch 0 (a resume that lost the weights would start again near epoch 0's loss).
        check(L1 is not None and L0 is not None and Lref is not None and Lref < L0 and L1 <= L0 - 0.5 * (L0 - Lref),
              f"{name} {n_from} -> {n_to} rank(s): epoch-1 loss {L1} continues (epoch 0: {L0}; "
              f"continuing on {n_from}: {Lref})")

    p = subprocess.run([BIN, "checkpoint", "inspect", os.path.join(tmp, "gpipe4")], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0 and "stage 3 blocks" in p.stdout and "algo gpipe" in p.stdout,
          f"inspect: exit 0, the partition and the algorithm shown\n{p.stdout[:1500]}{p.stderr}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
J.finish("reshard_job: all checks passed")
