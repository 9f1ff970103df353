"""Shared pieces of the job-level tests that drive launch/local.sh (faults.py, dtp_job.py): running
a job with a timeout, recording pass/fail lines, reading metrics.jsonl, and the final verdict."""
import json
import os
import signal
import subprocess
import sys
import time


def from_argv(config):
    """The usual start of a job test run as `SCRIPT STAGEWISE_BIN REPO_DIR`: (binary, repository,
    a JobCheck on configs/CONFIG with one thread per rank and passive OpenMP waits)."""
    binary, repo = sys.argv[1], sys.argv[2]
    env = dict(os.environ, STAGEWISE_BIN=binary, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    return binary, repo, JobCheck(os.path.join(repo, "launch", "local.sh"), os.path.join(repo, "configs", config), env)


class JobCheck:
    def __init__(self, local_sh, config, env):
        self.local, self.config, self.env = local_sh, config, env
        self.failures = []

    def run(self, args, ranks=2, timeout=60):
        """Runs launch/local.sh RANKS CONFIG ARGS; returns (exit status, seconds, stdout+stderr)."""
        t = time.time()
        p = subprocess.run(["bash", self.local, str(ranks), self.config] + args, env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, time.time() - t, p.stdout + p.stderr

    def sigterm_stops_cleanly(self, args, out_dir, ranks=2):
        """Starts a long job writing to out_dir, sends SIGTERM to the launcher once the first
        records are out, and checks every rank checkpointed and the job exited 0."""
        p = subprocess.Popen(["bash", self.local, str(ranks), self.config] + args + ["--out", out_dir], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(os.path.join(out_dir, "metrics.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
        self.check(p.returncode == 0, f"sigterm: exit 0 (got {p.returncode})" + (f"\n{out[-3000:]}" if p.returncode else ""))
        self.check(os.path.exists(os.path.join(out_dir, "checkpoints", "LATEST")), "sigterm: checkpoint committed")

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failures.append(what)

    @staticmethod
    def records(d):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]

    def finish(self, passed_line):
        if self.failures:
            print(f"{len(self.failures)} check(s) failed", file=sys.stderr)
            sys.exit(1)
        print(passed_line)
