#!/usr/bin/env bash
# tools/gpu_check.sh OUT_DIR: everything a short GPU window should run, in one go, from a clean
# tree (docs/gpu.md). Every step is bounded by a timeout, writes its log under OUT_DIR, and the
# script ends with one summary table (OUT_DIR/summary.txt); a failing step does not stop the
# others. Steps:
#   1. configure + build for the GPU's architecture (build-gpu/)
#   2. ctest -L cuda (the CUDA kernel and backend tests, the NCCL and device-training MPI tests)
#   3. compute-sanitizer memcheck on both CUDA test binaries, racecheck on the kernels' tests
#   4. every algorithm as a real job (4 ranks sharing the GPU; bp on 1) against the same job on
#      the CPU: final test loss and accuracy side by side (tools/gpu_jobs.py)
#   5. tools/bench/step_throughput --device cuda against the PyTorch on the machine, when it has
#      CUDA
# Exit status: 0 every step passed; 1 some step failed (see the table); 2 no GPU or bad usage.
# Budget: about 8 minutes on one H100 with 16 cores (GPU_CHECK_QUICK=1 skips the sanitizers and
# the benchmark).
set -uo pipefail

prog=gpu_check.sh
if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: tools/gpu_check.sh OUT_DIR   (run from the repository root on a machine with a CUDA GPU)" >&2
  [[ $# -eq 1 ]] && exit 0
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "$prog: cannot create $1" >&2; exit 2; }
cd "$root"

# A GPU first: nothing else is worth the time without one.
if ! command -v nvidia-smi > /dev/null 2>&1; then
  echo "$prog: no GPU here (nvidia-smi not found); nothing to check" | tee "$out/summary.txt" >&2
  exit 2
fi
gpus=$(timeout "${GPU_CHECK_SMI_TIMEOUT:-30}" nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader 2> "$out/nvidia-smi.err")
if [[ -z $gpus ]]; then
  echo "$prog: nvidia-smi lists no GPU ($(head -c 200 "$out/nvidia-smi.err")); nothing to check" | tee "$out/summary.txt" >&2
  exit 2
fi
echo "$gpus" > "$out/gpus.txt"
card=$(head -1 <<< "$gpus" | cut -d, -f1 | xargs)
cap=$(head -1 <<< "$gpus" | cut -d, -f2 | tr -d ' .')
ngpu=$(wc -l <<< "$gpus")
jobs=$(nproc)
quick=${GPU_CHECK_QUICK:-0}

declare -a rows=()
failed=0
# step NAME LIMIT_S LOG COMMAND...: runs COMMAND under a timeout, records pass/fail and seconds.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" > "$out/$log" 2>&1
  rc=$?
  local secs=$((SECONDS - t0)) verdict=ok
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then verdict="TIMEOUT after ${limit}s"; failed=1
  elif [[ $rc -ne 0 ]]; then verdict="FAILED (exit $rc)"; failed=1; fi
  rows+=("$(printf '%-34s %-22s %5ss  %s' "$name" "$verdict" "$secs" "$log")")
  echo "$prog: $name: $verdict (${secs}s, $out/$log)" >&2
  return $rc
}

build=build-gpu
step "configure (sm_$cap)" 120 configure.log \
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSW_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$cap"
built=0
step "build" 420 build.log cmake --build "$build" -j"$jobs" && built=1

if [[ $built -eq 1 ]]; then
  step "ctest -L cuda" 300 ctest_cuda.log \
    ctest --test-dir "$build" -L cuda --output-on-failure --timeout 240 -j2
  grep -E "tests passed|Failed|Skipped" "$out/ctest_cuda.log" | tail -n 30 > "$out/ctest_cuda_summary.txt"

  if [[ $quick -ne 1 ]] && command -v compute-sanitizer > /dev/null 2>&1; then
    step "memcheck: kernel tests" 180 memcheck_kernels.log \
      compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tests/sw_cuda_tests"
    if [[ -x $build/tests/sw_cuda_backend_tests ]]; then
      step "memcheck: backend tests" 300 memcheck_backend.log \
        compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tests/sw_cuda_backend_tests" \
        --gtest_filter=-*Resnet18*
    fi
    step "racecheck: kernel tests" 180 racecheck_kernels.log \
      compute-sanitizer --tool racecheck --error-exitcode 9 "$build/tests/sw_cuda_tests"
  elif [[ $quick -ne 1 ]]; then
    rows+=("$(printf '%-34s %s' "sanitizers" "not run: compute-sanitizer not found")")
  fi

  step "jobs: GPU vs CPU, every algorithm" 240 jobs.log \
    python3 tools/gpu_jobs.py "$build/stagewise" "$root" "$out/jobs.json"

  if [[ $quick -ne 1 ]]; then
    py=python3
    if $py -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' > /dev/null 2>&1; then
      step "step throughput vs PyTorch (cuda)" 240 bench_step.log \
        python3 tools/bench/step_throughput --device cuda --build "$build" --python "$(command -v $py)" \
        --models lenet,simple_vgg,resnet18,allcnn --repeats 2 --iters 20 --threads 1
    else
      step "step throughput (cuda, ours only)" 180 bench_step.log bash -c "
        for m in lenet simple_vgg resnet18 allcnn; do $build/tools/sw_bench_step --model \$m --device cuda --iters 20 || exit 1; done"
      rows+=("$(printf '%-34s %s' "  PyTorch side" "not run: no PyTorch with CUDA on this machine")")
    fi
  fi
fi

{
  echo "gpu_check on $card (sm_$cap, $ngpu GPU(s)), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2> /dev/null)"
  printf '%s\n' "${rows[@]}"
  [[ -f $out/ctest_cuda_summary.txt ]] && { echo "--- ctest -L cuda"; cat "$out/ctest_cuda_summary.txt"; }
  [[ -f $out/jobs.log ]] && { echo "--- jobs"; tail -n 20 "$out/jobs.log"; }
  [[ -f $out/bench_step.log ]] && { echo "--- step throughput"; tail -n 12 "$out/bench_step.log"; }
  if [[ $ngpu -lt 2 ]]; then echo "allreduce bus bandwidth: not measured (one GPU: NCCL needs one GPU per rank)"; fi
} > "$out/summary.txt"
cat "$out/summary.txt"
exit $failed
