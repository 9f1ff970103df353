#!/usr/bin/env python3
"""Damaged checkpoints of a real 4-rank job (launch/local.sh, mpirun; dp on generated data): one
rank's shard of the latest checkpoint damaged makes every rank fall back together to the same
older step (the job resumes, says which checkpoint and why, keeps the damaged one renamed);
`stagewise checkpoint verify` names the damaged file (exit 2) and passes on a clean run (exit 0);
with checkpoint.fallback=false the resume is bad input (exit 2, one line naming the file).
(A failing write is tested in tests/io/CheckpointTest.cpp: a file-size limit on mpirun itself
hangs Open MPI's launcher, so it cannot stand in for a full disk here.)
usage: checkpoint_job.py STAGEWISE_BIN REPO_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from jobcheck import JobCheck  # noqa: E402

BIN, REPO = sys.argv[1], sys.argv[2]
LOCAL = os.path.join(REPO, "launch", "local.sh")
CONFIG = os.path.join(REPO, "configs", "synthetic_mlp.ini")
BASE = ["train.algo=dp", "train.epochs=2", "checkpoint.every_steps=8", "checkpoint.keep=3",
        "runtime.comm_timeout=20", "train.log_every_seconds=1000"]
ENV = dict(os.environ, STAGEWISE_BIN=BIN, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
J = JobCheck(LOCAL, CONFIG, ENV)
check = J.check


def verify(d):
    p = subprocess.run([BIN, "checkpoint", "verify", d], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


tmp = tempfile.mkdtemp(prefix="sw_ckpt_job_")
try:
    d = os.path.join(tmp, "run")
    rc, secs, out = J.run(BASE + ["--out", d], ranks=4, timeout=180)
    check(rc == 0, f"run on 4 ranks: exit 0 (got {rc})" + (f"\n{out[-2000:]}" if rc else ""))
    rc, out = verify(d)
    check(rc == 0 and out.count("ok ") == 3, f"verify: three checkpoints verify (exit {rc})\n{out}")
    ck = os.path.join(d, "checkpoints")
    latest = open(os.path.join(ck, "LATEST")).read().strip()
    steps = sorted(n for n in os.listdir(ck) if n.startswith("step_"))
    shard = os.path.join(ck, latest, "rank_00002.h5")
    with open(shard, "r+b") as f:  # 64 bytes flipped in the middle of rank 2's shard
        f.seek(os.path.getsize(shard) // 2)
        b = bytearray(f.read(64))
        f.seek(os.path.getsize(shard) // 2)
        f.write(bytes(x ^ 0xFF for x in b))
    rc, out = verify(d)
    check(rc == 2 and "rank_00002.h5" in out, f"verify: the damaged shard named, exit 2 (got {rc})\n{out}")
    rc, secs, out = J.run(BASE + ["train.epochs=3", "checkpoint.fallback=false", "--resume", d], ranks=4, timeout=120)
    errors = [l for l in out.splitlines() if "error:" in l]
    check(rc == 2 and errors and "rank_00002.h5" in errors[0], f"no fallback: exit 2 naming the file (got {rc})")
    rc, secs, out = J.run(BASE + ["train.epochs=3", "--resume", d], ranks=4, timeout=180)
    check(rc == 0, f"fallback: resume finishes (exit {rc})" + (f"\n{out[-2000:]}" if rc else ""))
    check(any("is damaged" in l and "rank_00002.h5" in l for l in out.splitlines()),
          "fallback: one line names the damaged shard and the step tried next")
    check(os.path.isdir(os.path.join(ck, "damaged_" + latest)), "fallback: the damaged checkpoint is kept, renamed")
    check(f"resuming from {steps[-2]}" in out or "resumed at step" in out, "fallback: every rank took the same older step")
    tests = [r for r in J.records(d) if r["split"] == "test"] if rc == 0 else []
    check([r["epoch"] for r in tests] == [0, 1, 2], f"fallback: one test record per epoch ({[r['epoch'] for r in tests]})")

finally:
    shutil.rmtree(tmp, ignore_errors=True)
J.finish("checkpoint_job: all checks passed")
