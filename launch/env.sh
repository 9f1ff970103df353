# shellcheck shell=bash
# launch/env.sh: environment for launching stagewise by hand (mpirun with a hostfile, or an
# interactive allocation). Source it, do not run it:  source launch/env.sh [RANKS_PER_NODE]
# It only fills in what is unset, so site modules and your own settings win. No 'set -euo
# pipefail' here on purpose: that would change the options of the shell that sources it.

if ! (return 0 2>/dev/null); then
  echo "launch/env.sh: source this file (source launch/env.sh [RANKS_PER_NODE]); running it does nothing" >&2
  exit 2
fi

# NCCL: warnings only by default (NCCL_DEBUG=INFO shows the chosen network and ring/tree setup).
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# NCCL's network is site-specific; typical settings, uncomment and adapt:
#   export NCCL_SOCKET_IFNAME=ib0          # or ^lo,docker0 to exclude interfaces (TCP bootstrap/sockets)
#   export NCCL_IB_HCA=mlx5_0,mlx5_1       # InfiniBand adapters to use (ibv_devices lists them)

# OpenMP threads per rank: Slurm's --cpus-per-task, else this node's cores / RANKS_PER_NODE (default 1).
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
  else
    _sw_ranks=${1:-1}
    if [[ ! $_sw_ranks =~ ^[1-9][0-9]*$ ]]; then
      echo "launch/env.sh: RANKS_PER_NODE must be a positive integer, got '$_sw_ranks'; using 1" >&2
      _sw_ranks=1
    fi
    OMP_NUM_THREADS=$(($(nproc) / _sw_ranks))
    unset _sw_ranks
    ((OMP_NUM_THREADS >= 1)) || OMP_NUM_THREADS=1
  fi
  export OMP_NUM_THREADS
fi

# Open MPI refuses to run as root unless told twice (containers often run as root).
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Shared-memory single copy (CMA) fails in containers without CAP_SYS_PTRACE; 'none' costs little.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
