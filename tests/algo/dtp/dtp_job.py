#!/usr/bin/env python3
"""train.algo=dtp_parallel as a real job through launch/local.sh (mpirun, 2 ranks, tiny synthetic
data): the run finishes with exit 0 and one train and one test record per epoch carrying the DTP
fields; an exception on rank 1 ends the job with exit status 3 within 30 s and a line naming it,
and --resume finishes the run; SIGTERM checkpoints and exits 0; train.algo=dtp on 2 ranks is bad
input (exit 2, one line naming dtp_parallel, nothing written).
usage: dtp_job.py STAGEWISE_BIN REPO_DIR
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
from jobcheck import JobCheck  # noqa: E402

BIN, REPO = sys.argv[1], sys.argv[2]
LOCAL = os.path.join(REPO, "launch", "local.sh")
CONFIG = os.path.join(REPO, "configs", "fmnist_dtp.ini")
BASE = ["train.algo=dtp_parallel", "data.name=synthetic", "data.synthetic_train=128", "data.synthetic_test=64",
        "data.synthetic_shape=1,32,32", "data.pad_to=0", "data.mean=0.5", "data.std=0.3", "model.width=4",
        "train.batch_size=16", "train.epochs=2", "dtp.feedback_iterations=2,2,2,2,2", "checkpoint.every_steps=4",
        "runtime.comm_timeout=10", "train.log_every_seconds=1000"]
ENV = dict(os.environ, STAGEWISE_BIN=BIN, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
J = JobCheck(LOCAL, CONFIG, ENV)
check, records = J.check, J.records


def run(args, ranks=2, timeout=120):
    return J.run(args, ranks, timeout)


tmp = tempfile.mkdtemp(prefix="sw_dtp_job_")
try:
    d = os.path.join(tmp, "ok")
    rc, secs, out = run(BASE + ["--out", d])
    check(rc == 0, f"run: exit 0 (got {rc})" + (f"\n{out[-2000:]}" if rc else ""))
    recs = records(d) if rc == 0 else []
    train = [r for r in recs if r["split"] == "train"]
    test = [r for r in recs if r["split"] == "test"]
    check(len(train) == 2 and len(test) == 2, "run: one train and one test record per epoch")
    need = ["epoch", "step", "loss", "acc", "samples_per_s", "wall_s", "lr", "drl_loss_G1", "angle_G5",
            "local_loss_L0", "feedback_s_per_step_rank1", "idle_rank1", "resyncs"]
    check(all(k in train[-1] for k in need) if train else False, "run: train records carry the DTP fields")
    check(train[-1]["resyncs"] == 0 if train else False, "run: ranks never drifted apart (resyncs 0)")

    d = os.path.join(tmp, "throw")
    rc, secs, out = run(BASE + ["runtime.fault=throw@1:6", "--out", d])
    check(rc == 3, f"throw: exit status 3 (got {rc})")
    check(secs < 30, f"throw: job ended in {secs:.1f} s (< 30 s)")
    check(any(l.startswith("[rank 1/2") and "injected fault" in l for l in out.splitlines()),
          "throw: one line '[rank 1/2 host] ... injected fault'")
    rc, secs, out = run(BASE + ["--resume", d])
    check(rc == 0, f"throw: resume finishes (exit {rc})")
    tests = [r for r in records(d) if r["split"] == "test"] if rc == 0 else []
    check(len(tests) == 2 and tests[-1]["epoch"] == 1, "throw: resumed run logged both test epochs once")

    d = os.path.join(tmp, "sigterm")
    J.sigterm_stops_cleanly(BASE + ["train.epochs=500"], d)

    d = os.path.join(tmp, "seq2")
    rc, secs, out = run(BASE + ["train.algo=dtp", "--out", d])
    check(rc == 2, f"dtp on 2 ranks: exit 2 (got {rc})")
    errs = [l for l in out.splitlines() if "error:" in l]
    check(len(errs) == 1 and errs[0].startswith("stagewise: error:") and "dtp_parallel" in errs[0],
          "dtp on 2 ranks: one error line (every rank finds it), naming dtp_parallel")
    check(not os.path.exists(os.path.join(d, "metrics.jsonl")), "dtp on 2 ranks: nothing written")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

J.finish("dtp_job: all checks passed")
