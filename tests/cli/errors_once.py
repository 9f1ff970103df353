#!/usr/bin/env python3
"""Errors once (real mpirun jobs through launch/local.sh): a configuration error every rank finds
is printed once, by rank 0, as `stagewise: error: ...` with no rank prefixes; an error of one rank
keeps that rank's prefix; mpirun's own banners are gone and launch/local.sh sums up the exit in
one line; the exit statuses stay 2 (bad input) and 3 (failure during the run).
usage: errors_once.py STAGEWISE_BIN REPO_DIR
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from jobcheck import from_argv  # noqa: E402

BIN, REPO, J = from_argv("synthetic_mlp.ini")
check = J.check
tmp = tempfile.mkdtemp(prefix="sw_errors_once_")
try:
    rc, _, out = J.run(["train.algo=dp", "train.batch_size=2", "--out", os.path.join(tmp, "a")], ranks=3, timeout=120)
    errs = [l for l in out.splitlines() if "error:" in l]
    check(rc == 2, f"every rank's config error: exit 2 (got {rc})")
    check(len(errs) == 1 and errs[0].startswith("stagewise: error: train.batch_size = 2"),
          f"every rank's config error: printed once, without rank prefix\n{out}")
    check("mpirun detected" not in out and "Primary job" not in out, f"no mpirun banner\n{out}")
    check(sum("launch/local.sh: the job stopped on bad input (exit 2)" in l for l in out.splitlines()) == 1,
          f"one summary line from launch/local.sh\n{out}")

    rc, _, out = J.run(["train.algo=dp", "runtime.fault=throw@1:3", "runtime.comm_timeout=20", "--out",
                        os.path.join(tmp, "b")], ranks=2, timeout=120)
    lines = out.splitlines()
    check(rc == 3, f"one rank's failure: exit 3 (got {rc})")
    check(any(l.startswith("[rank 1/2") and "failure:" in l for l in lines),
          f"one rank's failure: reported under that rank's prefix\n{out}")
    check(any("launch/local.sh: the job failed during the run (exit 3)" in l for l in lines),
          f"one summary line from launch/local.sh\n{out}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
J.finish("errors_once: all checks passed")
