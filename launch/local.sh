#!/usr/bin/env bash
# launch/local.sh: run N stagewise ranks on this one machine with mpirun, e.g. to try a distributed
# algorithm on a laptop or in CI. Sets what Open MPI needs here (root, oversubscription, no CMA),
# splits the cores between ranks, keeps one log per rank in RUNDIR/logs/1/rank.R/{stdout,stderr},
# and keeps the trainer's exit contract: 0 done, 2 bad input, 3 failure during the run.
set -euo pipefail

prog=launch/local.sh
usage() {
  cat <<EOF
usage: $prog N CONFIG [section.key=value ...] [--out DIR] [--resume DIR]
       $prog --help

Runs 'mpirun -n N stagewise train --config CONFIG ...' on this machine (ranks may outnumber cores).
The run directory RUNDIR is --out DIR, else --resume DIR, else runs/<CONFIG stem>; mpirun writes
each rank's output to RUNDIR/logs/1/rank.R/{stdout,stderr} (and to this terminal); the logs of
an earlier launch into the same RUNDIR are first moved to RUNDIR/logs.<time of that launch>.

environment:
  STAGEWISE_BIN    trainer binary (default: <repo>/build/stagewise)
  OMP_NUM_THREADS  threads per rank (default: max(1, nproc / N))
  SW_MPIRUN_ARGS   extra mpirun arguments, split on spaces (e.g. "--timeout 600")
  SW_MPIRUN_VERBOSE=1  keep mpirun's own banners (by default mpirun runs with --quiet and this
                   script says in one line how the job ended)

exit status: 0 done; 2 bad input (bad arguments here, or the trainer rejected its input);
3 failure during the run, including any rank killed by a signal or an mpirun error.
EOF
}
die_usage() {  # bad arguments: one line, the usage, exit 2
  echo "$prog: $1" >&2
  echo "usage: $prog N CONFIG [section.key=value ...] [--out DIR] [--resume DIR]  (--help for more)" >&2
  exit 2
}

if [[ $# -ge 1 && ($1 == --help || $1 == -h) ]]; then
  usage
  exit 0
fi
[[ $# -ge 2 ]] || die_usage "needs N and CONFIG"
nranks=$1
config=$2
shift 2
[[ $nranks =~ ^[1-9][0-9]*$ ]] || die_usage "N must be a positive integer, got '$nranks'"
[[ -f $config && -r $config ]] || die_usage "config file '$config' not found or not readable"

# The run directory, found the way the trainer finds it, so that logs land next to metrics.jsonl.
out="" resume=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --out=*) out=${args[i]#--out=} ;;
    --resume=*) resume=${args[i]#--resume=} ;;
    --out | --resume)
      ((i + 1 < ${#args[@]})) || die_usage "${args[i]} needs a value"
      if [[ ${args[i]} == --out ]]; then out=${args[i + 1]}; else resume=${args[i + 1]}; fi
      i=$((i + 1))
      ;;
  esac
done
rundir=$out
[[ -n $rundir ]] || rundir=$resume
if [[ -z $rundir ]]; then
  stem=$(basename -- "$config")
  rundir=runs/${stem%.*}
fi
[[ -n $out ]] || args+=(--out "$rundir")  # pin the trainer to the directory the logs go to

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bin=${STAGEWISE_BIN:-$repo/build/stagewise}
if [[ ! -x $bin ]]; then
  echo "$prog: trainer binary '$bin' not found or not executable (build it, or set STAGEWISE_BIN)" >&2
  exit 2
fi
if ! command -v mpirun >/dev/null; then
  echo "$prog: mpirun not found on PATH (Debian: apt-get install openmpi-bin)" >&2
  exit 2
fi

# Open MPI settings for a single machine, possibly a container where we are root.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  cores=$(nproc)
  OMP_NUM_THREADS=$((cores / nranks))
  ((OMP_NUM_THREADS >= 1)) || OMP_NUM_THREADS=1
fi
export OMP_NUM_THREADS
# More ranks than cores: threads that spin while waiting steal the cores other ranks need.
if ((nranks > $(nproc))); then export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}; fi

# mpirun truncates existing log files: keep a previous launch's logs (e.g. before --resume).
if [[ -d $rundir/logs && -n $(ls -A -- "$rundir/logs" 2>/dev/null) ]]; then
  prev=$rundir/logs.$(date -r "$rundir/logs" +%Y%m%d-%H%M%S)
  [[ ! -e $prev ]] || prev=$prev.$$
  mv -- "$rundir/logs" "$prev" && echo "$prog: previous logs moved to $prev" >&2
fi
if ! mkdir -p -- "$rundir/logs"; then
  echo "$prog: cannot create run directory '$rundir/logs'" >&2
  exit 2
fi
logdir=$(cd -- "$rundir/logs" && pwd)
read -r -a extra <<<"${SW_MPIRUN_ARGS:-}"
# The trainer reports its own errors (once when every rank finds the same); mpirun's banner
# about the exit status says nothing more.
[[ ${SW_MPIRUN_VERBOSE:-0} == 1 ]] || extra=(--quiet ${extra[@]+"${extra[@]}"})
cmd=(mpirun -n "$nranks" --oversubscribe --bind-to none --output-filename "$logdir"
  ${extra[@]+"${extra[@]}"} "$bin" train --config "$config" "${args[@]}")
echo "$prog: $nranks rank(s), OMP_NUM_THREADS=$OMP_NUM_THREADS, logs in $logdir" >&2

# mpirun runs in the background, in its own session (so a terminal's Ctrl-C reaches only this
# script), and a SIGTERM/SIGINT/HUP sent here (Ctrl-C, timeout, a batch system) is passed on as
# SIGTERM to the ranks themselves: the trainer then checkpoints and exits 0, which mpirun, sent the
# signal itself, would not wait for. A second signal stops mpirun, which then kills the ranks.
setsid=()
command -v setsid >/dev/null && setsid=(setsid)
${setsid[@]+"${setsid[@]}"} "${cmd[@]}" &
pid=$!
stopping=0
# shellcheck disable=SC2317  # only called from the trap below
stop_job() {
  local ranks
  if ((stopping == 0)); then
    stopping=1
    ranks=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    if [[ -n $ranks ]]; then
      echo "$prog: signal received, asking the ranks to checkpoint and stop (again to abort)" >&2
      # shellcheck disable=SC2086  # one pid per word
      kill -TERM $ranks 2>/dev/null || true
      return 0
    fi
  fi
  echo "$prog: stopping mpirun" >&2
  kill -TERM "$pid" 2>/dev/null || true
}
trap stop_job TERM INT HUP
status=0
while :; do
  wait "$pid" && status=0 || status=$?
  kill -0 "$pid" 2>/dev/null || break  # wait was only interrupted by a trapped signal
done
trap - TERM INT HUP

case $status in
  0) exit 0 ;;
  2)
    echo "$prog: the job stopped on bad input (exit 2); per-rank logs in $logdir" >&2
    exit 2
    ;;
  3)
    echo "$prog: the job failed during the run (exit 3); per-rank logs in $logdir" >&2
    exit 3
    ;;
esac
if ((status > 128)); then
  why="a process was killed by signal $(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))"
else
  why="mpirun or a rank exited with status $status"
fi
echo "$prog: the job ended abnormally ($why); per-rank logs in $logdir; exit 3" >&2
exit 3
