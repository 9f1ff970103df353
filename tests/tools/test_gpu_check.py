#!/usr/bin/env python3
"""tools/gpu_check.sh where there is no GPU: one clear line and exit 2, never a hang, whether
nvidia-smi is missing, fails, or hangs (fake ones on PATH). Then tools/gpu_jobs.py, the script's
GPU-vs-CPU job comparison, on runtime.device = cpu-staged, so the tool a GPU window relies on is
known to work. usage: test_gpu_check.py REPO_DIR STAGEWISE_BIN"""
import os
import subprocess
import sys
import tempfile
import time

repo, binary = sys.argv[1], sys.argv[2]
script = os.path.join(repo, "tools", "gpu_check.sh")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as tmp:
    fake = os.path.join(tmp, "bin")
    os.mkdir(fake)
    base_path = ":".join(p for p in os.environ["PATH"].split(":")
                         if not os.path.exists(os.path.join(p, "nvidia-smi")))
    cases = {"missing": None, "failing": "echo 'NVIDIA-SMI has failed' >&2; exit 9", "hanging": "sleep 600"}
    for name, body in cases.items():
        path = base_path
        if body:
            with open(os.path.join(fake, "nvidia-smi"), "w") as f:
                f.write("#!/bin/sh\n" + body + "\n")
            os.chmod(os.path.join(fake, "nvidia-smi"), 0o755)
            path = fake + ":" + base_path
        env = dict(os.environ, PATH=path, GPU_CHECK_SMI_TIMEOUT="2")
        t = time.time()
        p = subprocess.run(["bash", script, os.path.join(tmp, "out_" + name)], env=env, capture_output=True,
                           text=True, timeout=60)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(p.returncode == 2 and len(lines) == 1 and "gpu_check.sh:" in lines[0] and "GPU" in lines[0],
              f"nvidia-smi {name}: exit 2 with one line (got {p.returncode}: {p.stderr.strip()[:200]})")
        check(time.time() - t < 30, f"nvidia-smi {name}: ends in {time.time() - t:.1f} s")
    p = subprocess.run([sys.executable, os.path.join(repo, "tools", "gpu_jobs.py"), binary, repo,
                        os.path.join(tmp, "jobs.json"), "--device", "cpu-staged"],
                       capture_output=True, text=True, timeout=400)
    check(p.returncode == 0 and "all 9 jobs agree" in p.stdout,
          f"gpu_jobs.py on cpu-staged: every algorithm ran and agrees (exit {p.returncode})\n{p.stdout[-1500:]}{p.stderr[-1500:]}")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("gpu_check checks passed")
