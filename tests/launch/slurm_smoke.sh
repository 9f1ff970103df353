#!/usr/bin/env bash
# tests/launch/slurm_smoke.sh: CI test of launch/slurm/train.sbatch on a real, private, single-node
# Slurm (slurmctld + slurmd + munged started here from a temp dir, own ports and munge socket; the
# system's /etc/slurm and /etc/munge are not touched). Trains configs/synthetic_mlp.ini for one
# epoch through sbatch --wait and checks the job's exit status and metrics.jsonl. Needs root.
# usage: slurm_smoke.sh [STAGEWISE_BIN] [REPO]   env: SW_SLURM_ALGO (dp), SW_SLURM_TASKS (2),
#        SW_SLURM_PORT (16817; slurmd uses +1), SW_KEEP_TMP=1 keeps the temp dir. Exit 77 = skipped.
set -euo pipefail

repo=${2:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${1:-${STAGEWISE_BIN:-$repo/build/stagewise}}
algo=${SW_SLURM_ALGO:-dp}
tasks=${SW_SLURM_TASKS:-2}
port=${SW_SLURM_PORT:-16817}
export PATH=$PATH:/usr/sbin:/sbin

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

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

tmp=$(mktemp -d /tmp/sw-slurm.XXXXXX)
chmod 755 "$tmp"  # munged runs as user munge and must reach $tmp/munge
node=$(hostname -s)
jobid=""
ok=0

cleanup() {
  local rc=$? pidfile pid i
  set +e
  if [[ -n $jobid ]] && scontrol show job "$jobid" 2>/dev/null | grep -qE 'JobState=(PENDING|RUNNING|CONFIGURING|COMPLETING)'; then
    scancel --full "$jobid"
    sleep 2
  fi
  if [[ -f $tmp/slurmctld.pid ]]; then
    scontrol shutdown >/dev/null 2>&1
  fi
  # Wait for the daemons to go, then make sure: only the processes this script started.
  for pidfile in "$tmp/slurmctld.pid" "$tmp/slurmd.pid" "$tmp/munge/munged.pid"; do
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || continue
    [[ $pidfile == */munged.pid ]] && kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm_smoke: ${pidfile##*/} process $pid did not stop; killing it" >&2
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

slurmctld -i || fail "slurmctld did not start"
slurmd -N "$node" || fail "slurmd did not start"
state=""
for ((i = 0; i < 60; i++)); do
  state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.5
done
[[ $state == idle ]] || fail "node '$node' not idle after 30 s (state '${state:-none}')"

# The job: a real submission of the launch script, as a user would do it from the repo root.
cd -- "$repo"
status=0
STAGEWISE_BIN=$bin timeout 240 sbatch --wait --parsable --job-name=sw-smoke \
  --nodes=1 --ntasks="$tasks" --ntasks-per-node="$tasks" --cpus-per-task=1 --time=5 \
  --output="$tmp/job-%j.out" launch/slurm/train.sbatch configs/synthetic_mlp.ini \
  train.algo="$algo" train.epochs=1 --out "$tmp/run" >"$tmp/sbatch.out" || status=$?
jobid=$(head -n 1 "$tmp/sbatch.out" | cut -d';' -f1)
((status != 124)) || fail "sbatch --wait did not return within 240 s (job ${jobid:-?})"
((status == 0)) || fail "job ${jobid:-?} ($tasks task(s), train.algo=$algo) exited with status $status"
[[ -f $tmp/run/metrics.jsonl ]] || fail "job ${jobid:-?} succeeded but wrote no $tmp/run/metrics.jsonl"
grep -q '"split": "test"' "$tmp/run/metrics.jsonl" ||
  fail "$tmp/run/metrics.jsonl has no '\"split\": \"test\"' line"
ok=1
echo "PASS: sbatch launch/slurm/train.sbatch, job $jobid, $tasks task(s), train.algo=$algo"
