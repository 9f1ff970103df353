#!/usr/bin/env bash
# Runs one fuzz target on its corpus: tools/fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#   TARGET: config | idx | cifar | hdf5 | checkpoint (or fuzz_config, ...); SECONDS default 240.
# New inputs go to build-fuzz/corpus/fuzz_TARGET (the seeds in tests/fuzz_corpus/fuzz_TARGET are read,
# never written); crashes, timeouts and OOMs to build-fuzz/artifacts/fuzz_TARGET/. Extra flags pass
# through, e.g. -fork=1 -ignore_crashes=1 (keep going after a finding) or -detect_leaks=0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SW_FUZZ_BUILD:-$root/build-fuzz}
t=${1:?target}; t=fuzz_${t#fuzz_}; shift
secs=${1:-240}; [[ $# -gt 0 ]] && shift
dict=
case $t in
  fuzz_config) dict=$here/config.dict ;;
  fuzz_idx) dict=$here/idx.dict ;;
  fuzz_hdf5|fuzz_checkpoint) dict=$here/hdf5.dict ;;
esac
mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
export OMP_NUM_THREADS=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
asan=abort_on_error=1
case $t in
  fuzz_hdf5|fuzz_checkpoint)
    # HDF5 (not instrumented) asks malloc for sizes read from the file; outside ASan that is a NULL
    # it handles, so let ASan return NULL too (an allocation of ours that fails is still a finding:
    # std::bad_alloc; libFuzzer's -malloc_limit_mb still reports any single malloc over the RSS
    # limit). Leaks inside libhdf5 are suppressed (lsan_hdf5.supp), ours are still reported.
    asan=$asan:allocator_may_return_null=1
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan_hdf5.supp:print_suppressions=0} ;;
esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-$asan}
exec "$build/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  ${dict:+-dict="$dict"} -artifact_prefix="$build/artifacts/$t/" "$@" \
  "$build/corpus/$t" "$root/tests/fuzz_corpus/$t"
