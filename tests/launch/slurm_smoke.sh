#!/usr/bin/env bash
# tests/launch/slurm_smoke.sh: CI test of launch/slurm/train.sbatch on a real, private, single-node
# Slurm (slurmctld + slurmd + munged started here from a temp dir, own ports and munge socket; the
# system's /etc/slurm and /etc/munge are not touched). Trains configs/synthetic_mlp.ini for one
# epoch through sbatch --wait and checks the job's exit status and metrics.jsonl. Needs root.
# usage: slurm_smoke.sh [STAGEWISE_BIN] [REPO]   env: SW_SLURM_ALGO (dp), SW_SLURM_TASKS (2),
#   SW_SLURM_PORT (slurmctld port, slurmd uses +1; default: a free pair picked at random),
#   SW_KEEP_TMP=1 keeps the temp dir. Exit 77 = skipped. Worst case ~4.5 min, inside ctest's 300 s.
set -euo pipefail

repo=${2:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${1:-${STAGEWISE_BIN:-$repo/build/stagewise}}
algo=${SW_SLURM_ALGO:-dp}
tasks=${SW_SLURM_TASKS:-2}
job_limit=210  # seconds for sbatch --wait; the rest of ctest's TIMEOUT is for start-up and cleanup
export PATH=$PATH:/usr/sbin:/sbin

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
port_used() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[[ $(id -u) -eq 0 ]] || skip "needs root (starts slurmctld/slurmd as SlurmUser=root and munged as user munge)"
for b in slurmctld slurmd sbatch srun scontrol sinfo scancel munged mungekey runuser; do
  command -v "$b" >/dev/null || skip "'$b' not found (Debian: apt-get install slurmctld slurmd slurm-client munge)"
done
id munge >/dev/null 2>&1 || skip "no 'munge' user (the munge package creates it)"
[[ -x $bin ]] || fail "trainer binary '$bin' not found or not executable"
bin=$(cd -- "$(dirname -- "$bin")" && pwd)/$(basename -- "$bin")  # the job runs from $repo
repo=$(cd -- "$repo" && pwd)
[[ -f $repo/launch/slurm/train.sbatch ]] || fail "'$repo/launch/slurm/train.sbatch' not found (is '$repo' the repository?)"
[[ $tasks =~ ^[1-9][0-9]*$ ]] || fail "SW_SLURM_TASKS must be a positive integer, got '$tasks'"

# Ports: a fixed pair would let two runs at once (two checkouts, a manual run beside ctest) talk
# to each other's daemons, so take a random free pair unless one is given.
if [[ -n ${SW_SLURM_PORT:-} ]]; then
  port=$SW_SLURM_PORT
  [[ $port =~ ^[0-9]+$ ]] || fail "SW_SLURM_PORT must be a port number, got '$port'"
  if port_used "$port" || port_used $((port + 1)); then
    fail "port $port or $((port + 1)) is in use (SW_SLURM_PORT)"
  fi
else
  for ((i = 0; i < 50; i++)); do
    port=$((20000 + 2 * (RANDOM % 5000)))
    if ! port_used "$port" && ! port_used $((port + 1)); then break; fi
  done
  ((i < 50)) || fail "found no free port pair in 20000-29999"
fi

tmp=$(mktemp -d /tmp/sw-slurm.XXXXXX)
chmod 755 "$tmp"  # munged runs as user munge and must reach $tmp/munge
node=$(hostname -s)
jobid=""
ok=0
declare -A daemons=()  # name -> pid of each daemon this script started

# started NAME PIDFILE: wait (5 s at most) for a daemon's pid file and remember the pid.
started() {
  local i
  for ((i = 0; i < 50; i++)); do
    if [[ -s $2 ]]; then
      daemons[$1]=$(<"$2")
      [[ ${daemons[$1]} =~ ^[0-9]+$ ]] && return 0
    fi
    sleep 0.1
  done
  fail "$1 wrote no pid file $2 (see its log in $tmp)"
}

# gone SECONDS PID...: wait until none of the processes is alive, SECONDS at most.
gone() {
  local t=$(($1 * 5)) pid
  shift
  for ((; t > 0; t--)); do
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && break
      pid=""
    done
    [[ -z ${pid:-} ]] && return 0
    sleep 0.2
  done
  return 1
}

# Stops everything this script started, also after a failure or a signal. Slurm clients retry
# for a long time when a daemon is gone, hence the timeouts.
cleanup() {
  local rc=$? name pid i
  set +e
  trap '' INT TERM HUP  # a second signal must not cut the cleanup short
  [[ -n ${sbatch_pid:-} ]] && kill -TERM "$sbatch_pid" 2>/dev/null
  if [[ -n $jobid && -n ${daemons[slurmctld]:-} ]]; then
    timeout 10 scancel --full "$jobid" 2>/dev/null
    for ((i = 0; i < 25; i++)); do  # let the job's processes go before slurmd does
      timeout 5 scontrol -o show job "$jobid" 2>/dev/null |
        grep -qE 'JobState=(PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED)' || break
      sleep 0.2
    done
  fi
  [[ -n ${daemons[slurmctld]:-} ]] && timeout 10 scontrol shutdown >/dev/null 2>&1
  [[ -n ${daemons[slurmd]:-} ]] && kill -TERM "${daemons[slurmd]}" 2>/dev/null
  # munged last: the others talk to it while stopping.
  gone 10 "${daemons[slurmctld]:-}" "${daemons[slurmd]:-}"
  [[ -n ${daemons[munged]:-} ]] && kill -TERM "${daemons[munged]}" 2>/dev/null
  gone 5 "${daemons[munged]:-}"
  for name in slurmctld slurmd munged; do
    pid=${daemons[$name]:-}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      echo "slurm_smoke: $name (pid $pid) did not stop; killing it" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  if ((ok == 0)); then
    for f in "$tmp"/job-*.out "$tmp/slurmctld.log" "$tmp/slurmd.log" "$tmp/munge/munged.log"; do
      [[ -f $f ]] || continue
      echo "----- ${f#"$tmp"/} (last 40 lines) -----" >&2
      tail -n 40 "$f" >&2
    done
  fi
  if [[ ${SW_KEEP_TMP:-0} == 1 ]]; then
    echo "slurm_smoke: kept $tmp" >&2
  else
    rm -rf -- "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# munge: a private key, socket and daemon, so that a system munged (if any) is left alone.
install -d -o munge -g munge -m 0755 "$tmp/munge"  # munged wants its socket dir searchable by all
runuser -u munge -- mungekey --create --keyfile="$tmp/munge/munge.key" ||
  fail "mungekey could not create a key in $tmp/munge"
runuser -u munge -- munged --socket="$tmp/munge/munge.socket" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" \
  --seed-file="$tmp/munge/munged.seed" ||
  fail "munged did not start (see $tmp/munge/munged.log)"
started munged "$tmp/munge/munged.pid"

mkdir -p "$tmp/state" "$tmp/spool"
cat >"$tmp/slurm.conf" <<EOF
# Written by tests/launch/slurm_smoke.sh: a one-node cluster that lives in $tmp.
ClusterName=swci
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 Boards=1 SocketsPerBoard=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/slurm.conf

slurmctld -i || fail "slurmctld did not start (see $tmp/slurmctld.log)"
started slurmctld "$tmp/slurmctld.pid"
slurmd -N "$node" || fail "slurmd did not start (see $tmp/slurmd.log)"
started slurmd "$tmp/slurmd.pid"
state=""
for ((i = 0; i < 40; i++)); do
  state=$(timeout 5 sinfo -h -n "$node" -o %t 2>"$tmp/sinfo.err" || true)
  [[ $state == idle ]] && break
  sleep 0.5
done
[[ $state == idle ]] ||
  fail "node '$node' not idle after 20 s (state '${state:-none}'; sinfo: $(tail -n 1 "$tmp/sinfo.err"))"

# The job: a real submission of the launch script, as a user would do it from the repo root.
# sbatch runs in the background so that a signal to this script is handled at once (cleanup).
cd -- "$repo"
STAGEWISE_BIN=$bin timeout "$job_limit" sbatch --wait --parsable --job-name=sw-smoke \
  --nodes=1 --ntasks="$tasks" --ntasks-per-node="$tasks" --cpus-per-task=1 --time=5 \
  --output="$tmp/job-%j.out" launch/slurm/train.sbatch configs/synthetic_mlp.ini \
  train.algo="$algo" train.epochs=1 --out "$tmp/run" >"$tmp/sbatch.out" &
sbatch_pid=$!
for ((i = 0; i < 50; i++)); do  # the job id, for the cleanup
  if [[ -s $tmp/sbatch.out ]] || ! kill -0 "$sbatch_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
jobid=$(head -n 1 "$tmp/sbatch.out" | cut -d';' -f1)
status=0
wait "$sbatch_pid" || status=$?
sbatch_pid=""
jobid=$(head -n 1 "$tmp/sbatch.out" | cut -d';' -f1)
((status != 124)) || fail "sbatch --wait did not return within $job_limit s (job ${jobid:-?})"
((status == 0)) || fail "job ${jobid:-?} ($tasks task(s), train.algo=$algo) exited with status $status"
[[ -f $tmp/run/metrics.jsonl ]] || fail "job ${jobid:-?} succeeded but wrote no $tmp/run/metrics.jsonl"
grep -q '"split": "test"' "$tmp/run/metrics.jsonl" ||
  fail "$tmp/run/metrics.jsonl has no '\"split\": \"test\"' line"
ok=1
echo "PASS: sbatch launch/slurm/train.sbatch, job $jobid, $tasks task(s), train.algo=$algo"
