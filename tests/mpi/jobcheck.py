"""Shared pieces of the job-level tests that drive launch/local.sh (faults.py, dtp_job.py): running
a job with a timeout, recording pass/fail lines, reading metrics.jsonl, and the final verdict."""
import json
import os
import subprocess
import sys
import time


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
