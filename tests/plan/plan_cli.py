#!/usr/bin/env python3
"""`stagewise profile` and `stagewise plan` through the CLI: a profile measured on 2 ranks under
mpirun (links included), a plan for this machine that writes its files, the plan's overrides
trained for real, and bad input (a 1-rank profile for a 2-rank plan, a profile of another model,
a cluster with no devices, a memory limit nothing fits, a file that is not a profile): exit 2
with one line naming the problem. Usage: plan_cli.py STAGEWISE MPIEXEC SOURCE_DIR"""
import json, os, subprocess, sys, tempfile

exe, mpiexec, src = sys.argv[1], sys.argv[2], sys.argv[3]
tmp = tempfile.mkdtemp(prefix="sw_plan_")
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
cfg = os.path.join(src, "configs", "synthetic_mlp.ini")
local = os.path.join(src, "configs", "cluster", "local.ini")
failures = 0


def check(title, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + title + ("" if ok else ": " + detail))
    failures += not ok


def run(args, ranks=0, timeout=240):
    cmd = ([mpiexec, "-n", str(ranks), "--oversubscribe", exe] if ranks else [exe]) + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def bad(title, args, needle):
    r = run(args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(title, r.returncode == 2 and len(lines) == 1 and needle in lines[0], f"rc={r.returncode} stderr={lines}")


p1, p2 = os.path.join(tmp, "p1.json"), os.path.join(tmp, "p2.json")
r = run(["profile", "--config", cfg, "--rows", "16,32,64", "--repeats", "2", "--out", p1])
check("profile on one rank", r.returncode == 0 and os.path.exists(p1), r.stdout + r.stderr)
r = run(["profile", "--config", cfg, "--rows", "16,32,64", "--repeats", "2", "--out", p2], ranks=2)
ok = r.returncode == 0 and os.path.exists(p2)
check("profile on two ranks under mpirun", ok, r.stdout + r.stderr)
if ok:
    prof = json.load(open(p2))
    check("the two-rank profile holds the links", prof["comm"]["ranks"] == 2 and len(prof["comm"]["p2p"]) > 5
          and prof["comm"]["bandwidth_Bps"] > 0, json.dumps(prof["comm"])[:300])
    out = os.path.join(tmp, "plan")
    r = run(["plan", "--profile", p2, "--cluster", local, "--algos", "dp,1f1b,pipedream,parle", "--out", out])
    check("plan for this machine", r.returncode == 0 and "overrides: train.algo=" in r.stdout, r.stdout + r.stderr)
    files = ["plan.txt", "plan.json", "overrides.txt", "timeline.svg", "timeline_1f1b.svg"]
    check("plan writes its files", all(os.path.exists(os.path.join(out, f)) for f in files), str(os.listdir(out)))
    plan = json.load(open(os.path.join(out, "plan.json")))
    check("plan.json has every algorithm asked for", [a["algo"] for a in plan["algorithms"]] == ["dp", "1f1b", "pipedream", "parle"])
    overrides = open(os.path.join(out, "overrides.txt")).read().split()
    run_dir = os.path.join(tmp, "run")
    r = run(["train", "--config", cfg, "--out", run_dir, "train.epochs=1"] + overrides, ranks=2)
    check("the plan's overrides train", r.returncode == 0, r.stderr[-800:])
    f1b = [a for a in plan["algorithms"] if a["algo"] == "1f1b"][0]
    piped = [k for k in f1b["shapes"] if k["stages"] == 2]
    check("plan.json has 1f1b's pipelined shape", len(piped) == 1, json.dumps(f1b)[:400])
    if piped:
        r = run(["train", "--config", cfg, "--out", run_dir + "_1f1b", "train.epochs=1"] + piped[0]["overrides"], ranks=2)
        check("the pipelined shape's overrides train", r.returncode == 0, r.stderr[-800:])
    bad("cluster with no devices", ["plan", "--profile", p2, "--cluster", os.path.join(tmp, "none.ini")], "none.ini")
    open(os.path.join(tmp, "empty.ini"), "w").write("[cluster]\nnodes = 1\ndevices_per_node = 0\n")
    bad("cluster with zero devices", ["plan", "--profile", p2, "--cluster", os.path.join(tmp, "empty.ini")], "no devices")
    bad("memory limit nothing fits", ["plan", "--profile", p2, "--cluster", local, "--memory", "0.000001"], "no plan fits")
    bad("profile of another model", ["plan", "--profile", p2, "--cluster", local, "model.hidden=32"], "measured on")
bad("one-rank profile for a two-rank plan", ["plan", "--profile", p1, "--cluster", local], "mpirun -n 2")
junk = os.path.join(tmp, "junk.json")
open(junk, "w").write("{\"format\": 3}")
bad("not a profile", ["plan", "--profile", junk, "--cluster", local], "junk.json")
bad("profile without --out", ["profile", "--config", cfg], "--out")
bad("profile of a missing config", ["profile", "--config", os.path.join(tmp, "nope.ini"), "--out", p1], "nope.ini")
bad("unknown algorithm", ["plan", "--profile", p1, "--cluster", local, "--ranks", "1", "--algos", "nope"], "nope")
print("plan_cli: %d failure(s)" % failures)
sys.exit(1 if failures else 0)
