#!/usr/bin/env python3
"""A real multi-host job on one machine: three network namespaces play three hosts.

Namespaces swmh<tag>_0/1/2 (tag = this process's pid) are joined through a Linux bridge in the root
namespace by veth pairs, with 10.77.X.1/.2/.3 (X from the pid; the addresses exist only inside the
namespaces, so no subnet of the machine can clash). mpirun runs in namespace 0 and starts its
daemons on the other two "hosts" through tests/launch/netns_agent.sh, an ssh stand-in that enters
the namespace of the host it is given (and gives each host a TMPDIR of its own: the namespaces
share one file system and one host name, and Open MPI daemons of different hosts must not share a
session directory). MPI traffic goes over Open MPI's TCP transport only (btl tcp,self).
  1. a dp job of 3 ranks, one per host: exit 0, test records for both epochs, and every rank (and
     each daemon the agent started) really ran in its own namespace;
  2. the fault: a long job, and once a checkpoint is committed, host 2's link is cut
     (`ip link set <its veth> down`, root side): every rank must end with exit status 3 within
     30 s of the cut. Each rank runs under a small shell wrapper that records the trainer's own
     exit status and time, and when a SIGTERM (Open MPI's way of killing ranks after an MPI_Abort
     elsewhere) reached it; a rank that vanishes without a status was SIGKILLed by Open MPI.
     mpirun and the daemon of the cut host may stay behind: they are killed afterwards;
  3. the link comes back and `--resume` finishes the run across the hosts (exit 0, `resumed at
     step`, metrics.jsonl ends with the test record of epoch 2, every test epoch once).
Skips (one line `multihost_netns: skipped: <why>`, exit 0) where namespaces, a bridge or veth pairs
cannot be made (not root, no `ip`, no mpirun, a container without the rights). Everything it
creates is removed in a `finally`, also after failures, a timeout or SIGTERM. Takes about 20 s.
usage: multihost_netns.py STAGEWISE_BIN REPO_DIR
"""
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN, REPO = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(REPO, "tests", "train"))
from jobcheck import JobCheck  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "synthetic_mlp.ini")
AGENT = os.path.join(REPO, "tests", "launch", "netns_agent.sh")
BASE = ["train.algo=dp", "checkpoint.every_steps=8", "runtime.comm_timeout=10", "train.log_every_seconds=1000"]
NHOSTS = 3
CUT_HOST = 2          # the host whose link is cut (not 0: mpirun itself runs there)
EXIT_LIMIT_S = 30.0   # every rank must be gone with status 3 this long after the cut
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")
J = JobCheck(None, CONFIG, ENV)
check, records = J.check, J.records

# Runs in a namespace: listens on ADDR:PORT, says "ready", accepts one connection (5 s at most).
PROBE_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 47011)); s.listen(1); s.settimeout(5)
print("ready", flush=True)
c, _ = s.accept(); sys.exit(0 if c.recv(4) == b"ping" else 1)
"""
PROBE_CLIENT = """
import socket, sys
socket.create_connection((sys.argv[1], 47011), timeout=3).sendall(b"ping")
"""
# The program mpirun starts on every rank (sh -c WRAPPER sw_rank PREFIX TRAINER ARGS...), with
# S = PREFIX.RANK: runs the trainer as a background child (so that a trapped SIGTERM is handled at
# once, not after the child ends), writes its pid to S.pid, the time a SIGTERM arrived to S.term,
# and at the end "STATUS TIME NAMESPACE" to S (whole, then renamed), and exits with the trainer's
# status. A SIGKILL to the rank's process group (Open MPI's last resort) leaves no S.
RANK_WRAPPER = (
    's=$1.$OMPI_COMM_WORLD_RANK; shift; ns=$(ip netns identify 2>/dev/null); '
    'trap \'date +%s.%N >"$s.term"\' TERM; '
    '"$@" & pid=$!; echo $pid >"$s.pid"; '
    'while :; do wait $pid; rc=$?; kill -0 $pid 2>/dev/null || break; done; '
    'echo "$rc $(date +%s.%N) ${ns:-?}" >"$s.tmp" && mv "$s.tmp" "$s"; exit $rc')


class Skip(Exception):
    pass


def sh(*cmd, timeout=20, check_rc=True):
    """Runs a short command (ip ...); returns (status, output); raises on a non-zero status."""
    p = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stdout + p.stderr).strip()}")
    return p.returncode, p.stdout + p.stderr


class Hosts:
    """The namespaces, veth pairs and bridge of one run; close() removes whatever exists of them."""

    def __init__(self):
        pid = os.getpid()
        # A leftover of an earlier run with the same pid (or one in another pid namespace): pick a
        # suffix nobody uses. Interface names stay within Linux's 15 characters.
        for suffix in [""] + list("abcdefgh"):
            tag = f"{pid}{suffix}"
            if not any(os.path.exists(f"/run/netns/swmh{tag}_{i}") for i in range(NHOSTS)) and \
               not os.path.exists(f"/sys/class/net/swmh{tag}b"):
                break
        self.tag = tag
        self.ns = [f"swmh{tag}_{i}" for i in range(NHOSTS)]
        self.bridge = f"swmh{tag}b"
        self.outer = [f"swmh{tag}h{i}" for i in range(NHOSTS)]  # root-namespace ends
        self.inner = [f"swmh{tag}n{i}" for i in range(NHOSTS)]  # ends inside the namespaces
        x = 16 + pid % 224
        self.subnet = f"10.77.{x}.0/24"
        self.ip = [f"10.77.{x}.{i + 1}" for i in range(NHOSTS)]
        self.made_ns, self.made_links = [], []

    def build(self):
        if os.geteuid() != 0:
            raise Skip("needs root to create network namespaces")
        if not shutil.which("ip"):
            raise Skip("no 'ip' command (iproute2)")
        if not shutil.which("mpirun"):
            raise Skip("mpirun not found (Debian: apt-get install openmpi-bin)")
        for ns in self.ns:
            rc, out = sh("ip", "netns", "add", ns, check_rc=False)
            if rc != 0:
                raise Skip(f"'ip netns add {ns}' failed: {out.strip()}")
            self.made_ns.append(ns)
        rc, out = sh("ip", "link", "add", self.bridge, "type", "bridge", check_rc=False)
        if rc != 0:
            raise Skip(f"cannot create a bridge: {out.strip()}")
        self.made_links.append(self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, ns in enumerate(self.ns):
            rc, out = sh("ip", "link", "add", self.outer[i], "type", "veth", "peer", "name", self.inner[i],
                         "netns", ns, check_rc=False)
            if rc != 0:
                raise Skip(f"cannot create a veth pair: {out.strip()}")
            self.made_links.append(self.outer[i])
            sh("ip", "link", "set", self.outer[i], "master", self.bridge, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", self.ip[i] + "/24", "dev", self.inner[i])
            sh("ip", "-n", ns, "link", "set", self.inner[i], "up")
        for i in range(1, NHOSTS):
            if not self.reachable(0, i, within=10):
                raise Skip(f"namespaces made, but {self.ip[i]} cannot be reached from {self.ns[0]} over the "
                           "bridge (a firewall on bridged traffic?)")

    def reachable(self, a, b, within):
        """Whether a TCP connection from host a to host b works, trying for `within` seconds."""
        deadline = time.time() + within
        while True:
            srv = subprocess.Popen(["ip", "netns", "exec", self.ns[b], sys.executable, "-c", PROBE_SERVER, self.ip[b]],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True)
            try:
                if srv.stdout.readline().strip() == "ready":
                    c = subprocess.run(["ip", "netns", "exec", self.ns[a], sys.executable, "-c", PROBE_CLIENT,
                                        self.ip[b]], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
                    if c.returncode == 0 and srv.wait(timeout=10) == 0:
                        return True
            except subprocess.TimeoutExpired:
                pass
            finally:
                if srv.poll() is None:
                    srv.kill()
                srv.wait()
                srv.stdout.close()
            if time.time() > deadline:
                return False
            time.sleep(0.5)

    def pids(self):
        """{namespace: [pid, ...]} of the processes now running in our namespaces."""
        found = {}
        for ns in self.made_ns:
            rc, out = sh("ip", "netns", "pids", ns, check_rc=False)
            found[ns] = [int(w) for w in out.split() if w.isdigit()] if rc == 0 else []
        return found

    def kill_all(self, grace=3.0):
        """Ends every process in our namespaces (they are all this test's): TERM, then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [p for ps in self.pids().values() for p in ps]
            for p in left:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + grace
            while left and time.time() < deadline:
                time.sleep(0.1)
                left = [p for ps in self.pids().values() for p in ps]
            if not left:
                return

    def close(self):
        errors = []
        try:
            self.kill_all()
        except Exception as e:  # noqa: BLE001  (cleanup goes on whatever happens)
            errors.append(str(e))
        # The root-side end of a veth pair takes its peer with it; namespaces go after that.
        for link in reversed(self.made_links):
            if os.path.exists(f"/sys/class/net/{link}"):
                rc, out = sh("ip", "link", "del", link, check_rc=False)
                if rc != 0:
                    errors.append(out.strip())
        for ns in self.made_ns:
            rc, out = sh("ip", "netns", "del", ns, check_rc=False)
            if rc != 0:
                errors.append(out.strip())
        if errors:
            print("multihost_netns: cleanup: " + "; ".join(errors), file=sys.stderr)


def no_core_dumps():
    # mpirun 4.1 can segfault when it is killed in the middle of an abort: no core files.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Job:
    """One mpirun across the hosts, started in namespace 0, in the background."""

    def __init__(self, hosts, tmp, name, trainer_args, agent):
        self.hosts, self.name = hosts, name
        self.status_prefix = os.path.join(tmp, f"status_{name}")
        hostfile = os.path.join(tmp, "hostfile")
        with open(hostfile, "w") as f:
            f.writelines(f"{ip} slots=1\n" for ip in hosts.ip)
        self.logdir = os.path.join(tmp, f"logs_{name}")
        self.out_path = os.path.join(tmp, f"{name}.out")
        # --leave-session-attached: the daemons stay children of their agent instead of detaching,
        # so that mpirun notices (and reports) a daemon that dies instead of waiting for it forever.
        self.cmd = ["ip", "netns", "exec", hosts.ns[0],
                    "mpirun", "-n", str(NHOSTS), "--hostfile", hostfile, "--allow-run-as-root", "--oversubscribe",
                    "--bind-to", "none", "--leave-session-attached", "--output-filename", self.logdir,
                    "--mca", "plm_rsh_agent", agent, "--mca", "plm_rsh_no_tree_spawn", "1",
                    "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", hosts.subnet,
                    "--mca", "oob_tcp_if_include", hosts.subnet,
                    "-x", "OMP_NUM_THREADS", "-x", "OMP_WAIT_POLICY",
                    "sh", "-c", RANK_WRAPPER, "sw_rank", self.status_prefix,
                    BIN, "train", "--config", CONFIG] + trainer_args
        host_tmp = os.path.join(tmp, "t")
        os.makedirs(os.path.join(host_tmp, hosts.ns[0]), exist_ok=True)
        env = dict(ENV, SW_NETNS_HOSTS=" ".join(f"{ip}={ns}" for ip, ns in zip(hosts.ip, hosts.ns)),
                   SW_NETNS_LOG=os.path.join(tmp, "agent.log"), SW_NETNS_TMPDIR=host_tmp,
                   TMPDIR=os.path.join(host_tmp, hosts.ns[0]))
        self.out_file = open(self.out_path, "w")
        self.t0 = time.time()
        self.p = subprocess.Popen(self.cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=self.out_file,
                                  stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=no_core_dumps)

    def wait(self, timeout):
        """The exit status of mpirun, or None if it is still running after `timeout` seconds."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Kills mpirun (and its session), then whatever is left in the namespaces."""
        if self.p.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.p.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(3) is not None:
                    break
        self.hosts.kill_all()
        self.out_file.close()

    def output(self):
        """mpirun's output plus every rank's own log files (written by its daemon, on its host)."""
        if not self.out_file.closed:
            self.out_file.flush()
        with open(self.out_path, errors="replace") as f:
            text = f.read()
        for root, _, files in sorted(os.walk(self.logdir)):
            for fn in sorted(files):
                with open(os.path.join(root, fn), errors="replace") as f:
                    text += f"\n----- {os.path.relpath(os.path.join(root, fn), self.logdir)} -----\n" + f.read()
        return text

    def rank_log(self, r):
        """Rank r's own stderr (as its daemon wrote it), '' if none."""
        for root, _, files in os.walk(self.logdir):
            if os.path.basename(root) == f"rank.{r}" and "stderr" in files:
                with open(os.path.join(root, "stderr"), errors="replace") as f:
                    return f.read()
        return ""


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def rank_state(prefix, r):
    """What the wrapper of rank r recorded: {'rc', 'when', 'ns'} once the trainer exited by itself,
    'term' (time a SIGTERM arrived), 'gone' (the trainer's process no longer exists)."""
    s = f"{prefix}.{r}"
    st = {}
    words = (read_file(s) or "").split()
    if len(words) >= 3:
        st.update(rc=int(words[0]), when=float(words[1]), ns=words[2])
    term = (read_file(s + ".term") or "").strip()
    if term:
        st["term"] = float(term)
    pid = (read_file(s + ".pid") or "").strip()
    if "rc" in st:
        st["gone"] = True
    elif pid.isdigit():
        stat = read_file(f"/proc/{pid}/stat")
        st["gone"] = stat is None or stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    return st


def agent_entries(tmp):
    return [line.split() for line in (read_file(os.path.join(tmp, "agent.log")) or "").splitlines() if line.strip()]


def nonblank_lines(text):
    return [l for l in text.splitlines() if l.strip()]


def tail(text, n=3000):
    return "\n" + text[-n:] if text else ""


def main(hosts, tmp):
    agent = AGENT
    if not os.access(agent, os.X_OK):  # a checkout that lost the file mode
        agent = os.path.join(tmp, "netns_agent.sh")
        shutil.copy(AGENT, agent)
        os.chmod(agent, 0o755)

    # 1. A short run across the three hosts.
    d = os.path.join(tmp, "run")
    job = Job(hosts, tmp, "run", BASE + ["train.epochs=2", "--out", d], agent)
    print("multihost_netns: " + shlex.join(job.cmd), flush=True)
    rc = job.wait(90)
    job.stop()
    out = job.output()
    check(rc == 0, f"run: mpirun over {NHOSTS} namespaces, btl tcp,self, exit 0 (got {rc}) "
                   f"in {time.time() - job.t0:.1f} s" + (tail(out) if rc != 0 else ""))
    tests = [r["epoch"] for r in records(d) if r["split"] == "test"] if os.path.exists(os.path.join(d, "metrics.jsonl")) else []
    check(tests == [0, 1], f"run: metrics.jsonl has the test records of epochs 0 and 1 (got {tests})")
    where = {r: rank_state(job.status_prefix, r).get("ns") for r in range(NHOSTS)}
    check(where == {r: hosts.ns[r] for r in range(NHOSTS)},
          f"run: rank r ran in namespace swmh{hosts.tag}_r, one rank per host (got {where})")
    entries = agent_entries(tmp)
    want = sorted([hosts.ip[i], hosts.ns[i]] for i in range(1, NHOSTS))
    got = sorted(e[:2] for e in entries)
    check(got == want, f"run: the agent started one daemon in each other namespace (got {got})")

    # 2. The fault: cut host CUT_HOST's link once a checkpoint is committed.
    d = os.path.join(tmp, "fault")
    job = Job(hosts, tmp, "fault", BASE + ["train.epochs=50", "--out", d], agent)
    latest = os.path.join(d, "checkpoints", "LATEST")
    deadline = time.time() + 60
    while time.time() < deadline and not os.path.exists(latest) and job.p.poll() is None:
        time.sleep(0.05)
    if not os.path.exists(latest) or job.p.poll() is not None:
        rc = job.p.poll()
        job.stop()
        check(False, f"fault: a checkpoint committed while the job runs (mpirun "
                     f"{'exited with status %d' % rc if rc is not None else 'still running, killed'} "
                     f"after {time.time() - job.t0:.1f} s)" + tail(job.output()))
        return
    sh("ip", "link", "set", hosts.outer[CUT_HOST], "down")
    t_cut = time.time()
    print(f"multihost_netns: checkpoint committed {t_cut - job.t0:.1f} s after the start; cut "
          f"{hosts.outer[CUT_HOST]} (the link of host {CUT_HOST}, {hosts.ip[CUT_HOST]})", flush=True)
    # Until every rank is gone, a little past the limit, so that a late rank is measured too.
    gone_at = {}
    while time.time() < t_cut + EXIT_LIMIT_S + 10 and len(gone_at) < NHOSTS:
        for r in range(NHOSTS):
            if r not in gone_at and rank_state(job.status_prefix, r).get("gone"):
                gone_at[r] = time.time()
        time.sleep(0.1)
    mpirun_rc = job.p.poll()
    print(f"multihost_netns: mpirun {'exited with status %d' % mpirun_rc if mpirun_rc is not None else 'still running'}"
          f" {time.time() - t_cut:.1f} s after the cut" + ("; killing it and what is left in the namespaces"
                                                            if mpirun_rc is None else ""), flush=True)
    left = {ns: ps for ns, ps in hosts.pids().items() if ps}
    job.stop()
    out = job.output()
    for r in range(NHOSTS):
        st = rank_state(job.status_prefix, r)
        who = f"rank {r} ({hosts.ns[r]}{', cut host' if r == CUT_HOST else ''})"
        term = f"; a SIGTERM from Open MPI reached it {st['term'] - t_cut:.1f} s after the cut" if "term" in st else ""
        if "rc" in st:
            secs = st["when"] - t_cut
            check(st["rc"] == 3 and secs <= EXIT_LIMIT_S,
                  f"fault: {who} exit status {st['rc']} {secs:.1f} s after the cut (want 3 within "
                  f"{EXIT_LIMIT_S:.0f} s){term}")
        elif r in gone_at:
            last = nonblank_lines(job.rank_log(r))[-1:]
            check(False, f"fault: {who} did not exit by itself: its process was killed (no exit status; "
                         f"SIGKILL from Open MPI) by {gone_at[r] - t_cut:.1f} s after the cut{term}"
                         + (f"; its last line: {last[0]}" if last else ""))
        else:
            check(False, f"fault: {who} still running {time.time() - t_cut:.0f} s after the cut{term}")
    if not all(rank_state(job.status_prefix, r).get("rc") == 3 for r in range(NHOSTS)):
        print(tail(out, 4000), flush=True)
    lines = [l for l in out.splitlines() if l.startswith("[rank ") and "runtime.comm_timeout" in l]
    check(len(lines) >= 1, f"fault: the cause is reported, '[rank r/N host] ... runtime.comm_timeout' "
                           f"({len(lines)} such line(s))")
    print(f"multihost_netns: left running when the ranks were done: {left or 'nothing'}", flush=True)
    rest = {ns: ps for ns, ps in hosts.pids().items() if ps}
    check(not rest, f"fault: nothing left running in the namespaces after the kill (left: {rest})")
    check(os.path.exists(latest), "fault: a committed checkpoint exists")

    # 3. Link back, resume across the hosts.
    sh("ip", "link", "set", hosts.outer[CUT_HOST], "up")
    check(hosts.reachable(0, CUT_HOST, within=15), f"resume: host {CUT_HOST} reachable again after 'link up'")
    n_agent = len(agent_entries(tmp))
    job = Job(hosts, tmp, "resume", BASE + ["train.epochs=3", "--resume", d], agent)
    rc = job.wait(90)
    job.stop()
    out = job.output()
    check(rc == 0, f"resume: exit 0 (got {rc}) in {time.time() - job.t0:.1f} s" + (tail(out) if rc != 0 else ""))
    resumed = [l.strip() for l in out.splitlines() if "resumed at step" in l]
    check(bool(resumed), f"resume: resumed from a committed step ({resumed[0] if resumed else 'no resumed at step line'})")
    recs = records(d) if os.path.exists(os.path.join(d, "metrics.jsonl")) else []
    last = recs[-1] if recs else {}
    check(last.get("split") == "test" and last.get("epoch") == 2,
          f"resume: metrics.jsonl ends with the test record of epoch 2 (last: split {last.get('split')} "
          f"epoch {last.get('epoch')})")
    tests = [r["epoch"] for r in recs if r["split"] == "test"]
    check(tests == [0, 1, 2], f"resume: every test epoch logged once (got {tests})")
    where = {r: rank_state(job.status_prefix, r).get("ns") for r in range(NHOSTS)}
    check(where == {r: hosts.ns[r] for r in range(NHOSTS)} and len(agent_entries(tmp)) == n_agent + 2,
          f"resume: ran across the three namespaces again (ranks in {where})")


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: nothing is left behind


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)
hosts = Hosts()
# Short: Open MPI puts its session directories (and PMIx's socket files) under each host's TMPDIR.
tmp = tempfile.mkdtemp(prefix="swmh", dir="/tmp")
t_start = time.time()
try:
    try:
        hosts.build()
    except Skip as e:
        print(f"multihost_netns: skipped: {e}")
        sys.exit(0)
    print(f"multihost_netns: hosts {', '.join(f'{ns}={ip}' for ns, ip in zip(hosts.ns, hosts.ip))}, "
          f"bridge {hosts.bridge}", flush=True)
    main(hosts, tmp)
finally:
    hosts.close()
    shutil.rmtree(tmp, ignore_errors=True)

J.finish(f"all multi-host checks passed in {time.time() - t_start:.0f} s")
