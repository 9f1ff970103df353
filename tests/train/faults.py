#!/usr/bin/env python3
"""Fault handling of a real multi-rank job, through launch/local.sh (mpirun).

For each fault -- a rank that raises at step k, a rank killed with SIGKILL, a rank that hangs
(caught by the communication watchdog) -- the job must end with exit status 3 within 30 s, print
one line naming the failing rank, and leave a committed checkpoint from which `--resume` finishes
the run (exit 0, final test record in metrics.jsonl, as many epochs as an uninterrupted run).
Also: SIGTERM to the job stops every rank at a step boundary with a checkpoint and exit 0.
usage: faults.py STAGEWISE_BIN REPO_DIR
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jobcheck import JobCheck  # noqa: E402

BIN, REPO = sys.argv[1], sys.argv[2]
LOCAL = os.path.join(REPO, "launch", "local.sh")
CONFIG = os.path.join(REPO, "configs", "synthetic_mlp.ini")
BASE = ["train.algo=1f1b", "pipe.microbatches=2", "train.epochs=3", "checkpoint.every_steps=8",
        "runtime.comm_timeout=5", "train.log_every_seconds=1000"]
ENV = dict(os.environ, STAGEWISE_BIN=BIN, OMP_NUM_THREADS="1")
J = JobCheck(LOCAL, CONFIG, ENV)
check, records = J.check, J.records


def run(args, ranks=2, timeout=60):
    return J.run(args, ranks, timeout)


tmp = tempfile.mkdtemp(prefix="sw_faults_")
try:
    for kind, cause in [("throw", "injected fault"), ("kill", None), ("hang", "runtime.comm_timeout")]:
        d = os.path.join(tmp, kind)
        rc, secs, out = run(BASE + [f"runtime.fault={kind}@1:40", "--out", d])
        check(rc == 3, f"{kind}: exit status 3 (got {rc})")
        check(secs < 30, f"{kind}: job ended in {secs:.1f} s (< 30 s)")
        if cause:
            lines = [l for l in out.splitlines() if l.startswith("[rank ") and cause in l]
            check(len(lines) >= 1, f"{kind}: one line '[rank r/N host] ...{cause}...'")
        check(os.path.exists(os.path.join(d, "checkpoints", "LATEST")), f"{kind}: a committed checkpoint exists")
        rc, secs, out = run(BASE + ["--resume", d])
        check(rc == 0, f"{kind}: resume finishes (exit {rc})")
        tests = [r for r in records(d) if r["split"] == "test"]
        check(len(tests) == 3 and tests[-1]["epoch"] == 2, f"{kind}: resumed run logged all 3 test epochs once")

    # Graceful stop: SIGTERM to the launcher reaches every rank, which checkpoints and exits 0.
    d = os.path.join(tmp, "sigterm")
    J.sigterm_stops_cleanly(BASE + ["train.epochs=200"], d)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

J.finish("all fault checks passed")
