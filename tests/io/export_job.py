#!/usr/bin/env python3
"""A trained model leaves stagewise (real runs on generated data):
- `stagewise export` writes the whole model of a run's checkpoint in one file (safetensors and
  HDF5), and tools/load_in_torch.py builds the equivalent PyTorch module from it: PyTorch's logits
  on a batch match stagewise's to 1e-5 for lenet, resnet18 and revnet18 (a run of 2 pipeline
  stages exports the same model as one rank's: the checkpoint is read whole);
- a Parle run exports its master (the model it evaluates);
- `stagewise eval` reports the same test loss as the run's last test record, on 1 and on 3 ranks,
  with top-5 >= top-1, and for a chosen --checkpoint step;
- bad input (no checkpoint, a step that does not exist, an unknown format) is exit 2 with one
  line, and nothing is written.
usage: export_job.py STAGEWISE_BIN REPO_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from jobcheck import from_argv  # noqa: E402

BIN, REPO, J = from_argv("synthetic_mlp.ini")
check = J.check
LOADER = os.path.join(REPO, "tools", "load_in_torch.py")
MODELS = {"lenet": ["model.name=lenet", "data.synthetic_shape=1,28,28"],
          "resnet18": ["model.name=resnet18", "data.synthetic_shape=3,16,16"],
          "revnet18": ["model.name=revnet18", "data.synthetic_shape=3,16,16"]}
BASE = ["data.synthetic_train=128", "data.synthetic_test=40", "train.batch_size=32", "train.epochs=2",
        "model.width=4", "train.log_every_seconds=1000", "runtime.comm_timeout=30"]
tmp = tempfile.mkdtemp(prefix="sw_export_")


def torch_python():
    """A Python that has PyTorch (Debian's python3-torch, tools/setup_debian.sh, is for /usr/bin/python3)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(py) and subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0:
            return py
    return None


TORCH_PY = torch_python()
check(TORCH_PY is not None, "a Python with PyTorch (python3-torch, tools/setup_debian.sh) runs tools/load_in_torch.py")


def sw(args, timeout=120):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, env=J.env)
    return p.returncode, p.stdout + p.stderr


def eval_line(out):
    m = re.search(r"(\d+) samples: loss ([0-9.]+), top-1 ([0-9.]+)%, top-5 ([0-9.]+)%", out)
    return (int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))) if m else None


try:
    for name, args in MODELS.items():
        ranks, extra = (2, ["train.algo=gpipe", "pipe.microbatches=2"]) if name == "resnet18" else (1, [])
        d = os.path.join(tmp, name)
        rc, _, out = J.run(BASE + args + extra + ["--out", d], ranks=ranks, timeout=300)
        check(rc == 0, f"{name}: trained on {ranks} rank(s) (exit {rc})" + (f"\n{out[-2000:]}" if rc else ""))
        for fmt, ext in (("safetensors", "safetensors"), ("h5", "h5")):
            f, probe = os.path.join(tmp, f"{name}.{ext}"), os.path.join(tmp, f"{name}_{ext}_probe.h5")
            rc, out = sw(["export", "--run", d, "--format", fmt, "--out", f, "--probe", probe, "--probe-samples", "8"])
            check(rc == 0 and os.path.exists(f) and os.path.exists(probe), f"{name}: export --format {fmt} (exit {rc})\n{out}")
            p = subprocess.run([TORCH_PY or sys.executable, LOADER, f, "--probe", probe], capture_output=True,
                               text=True, timeout=300)
            diff = re.search(r"max \|logits diff\| = ([0-9.eE+-]+)", p.stdout + p.stderr)
            check(p.returncode == 0 and diff and float(diff.group(1)) <= 1e-5,
                  f"{name} ({fmt}): PyTorch's logits match stagewise's, max diff "
                  f"{diff.group(1) if diff else '?'}\n{p.stdout[-1500:]}{p.stderr[-1500:]}")

    # Parle's deliverable is its master: exported (and loadable) from a 2-replica run.
    d = os.path.join(tmp, "parle")
    rc, _, out = J.run(["train.algo=parle", "model.hidden=32,32", "data.synthetic_train=256", "data.synthetic_test=40",
                        "train.epochs=1", "train.log_every_seconds=1000", "--out", d], ranks=2, timeout=300)
    check(rc == 0, f"parle: trained on 2 ranks (exit {rc})")
    f, probe = os.path.join(tmp, "parle.safetensors"), os.path.join(tmp, "parle_probe.h5")
    rc, out = sw(["export", "--run", d, "--format", "safetensors", "--out", f, "--probe", probe])
    p = subprocess.run([TORCH_PY or sys.executable, LOADER, f, "--probe", probe], capture_output=True, text=True,
                       timeout=300)
    check(rc == 0 and "(Parle's master)" in out and p.returncode == 0,
          f"parle: the master exported and loaded in PyTorch\n{out}{p.stdout[-800:]}{p.stderr[-800:]}")

    # eval: the run's own last test record, on 1 and 3 ranks; a chosen step.
    d = os.path.join(tmp, "lenet")
    last = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if '"test"' in l][-1]
    rc, out = sw(["eval", "--run", d])
    e1 = eval_line(out)
    check(rc == 0 and e1 and abs(e1[1] - last["loss"]) <= 1e-4 * max(1, last["loss"]) and e1[0] == 40
          and e1[3] >= e1[2], f"eval on 1 rank: the run's test loss {last['loss']} and all 40 samples ({e1})\n{out}")
    env = dict(J.env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    p = subprocess.run(["mpirun", "-q", "-n", "3", "--oversubscribe", BIN, "eval", "--run", d], env=env,
                       capture_output=True, text=True, timeout=120)
    rc, out = p.returncode, p.stdout + p.stderr
    e3 = eval_line(out)
    check(rc == 0 and e3 and e1 and e3[0] == e1[0] and abs(e3[1] - e1[1]) <= 1e-6 and e3[2] == e1[2],
          f"eval on 3 ranks == on 1 ({e3} vs {e1})\n{out[-1500:]}")
    steps = sorted(n for n in os.listdir(os.path.join(d, "checkpoints")) if n.startswith("step_"))
    first = int(steps[0][5:])
    rc, out = sw(["eval", "--run", d, "--checkpoint", str(first), "--split", "train"])
    check(rc == 0 and f"(step {first}," in out and "train split, 128 samples" in out,
          f"eval --checkpoint {first} --split train\n{out}")

    # Bad input: exit 2, one line, nothing written.
    bad = os.path.join(tmp, "bad.safetensors")
    for args, what in ((["export", "--run", os.path.join(tmp, "nothing"), "--format", "h5", "--out", bad], "no run"),
                       (["export", "--run", d, "--format", "onnx", "--out", bad], "unknown format"),
                       (["export", "--run", d, "--checkpoint", "999", "--format", "h5", "--out", bad], "no such step"),
                       (["eval", "--run", d, "model.width=8"], "a model override")):
        rc, out = sw(args)
        lines = [l for l in out.splitlines() if l.strip()]
        check(rc == 2 and len(lines) == 1 and "error:" in lines[0] and not os.path.exists(bad),
              f"{what}: exit 2, one line, nothing written (exit {rc})\n{out}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
J.finish("export_job: all checks passed")
