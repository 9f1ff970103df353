#!/usr/bin/env bash
# tests/launch/local_smoke.sh: CI test of launch/local.sh, the single-machine mpirun launcher.
# Checks the exit contract through mpirun (0 done, 2 bad input, 3 a rank killed by a signal) and
# that every rank gets its own log files next to the run's metrics.jsonl.
# usage: local_smoke.sh [STAGEWISE_BIN] [REPO]   env: SW_LOCAL_ALGO (bp), SW_LOCAL_RANKS (1).
set -euo pipefail

repo=${2:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${1:-${STAGEWISE_BIN:-$repo/build/stagewise}}
algo=${SW_LOCAL_ALGO:-bp}
ranks=${SW_LOCAL_RANKS:-1}
launcher=$repo/launch/local.sh
config=$repo/configs/synthetic_mlp.ini

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
command -v mpirun >/dev/null || {
  echo "SKIP: mpirun not found (Debian: apt-get install openmpi-bin)"
  exit 77
}
[[ -x $bin ]] || fail "trainer binary '$bin' not found or not executable"
[[ -f $launcher ]] || fail "'$launcher' not found (is '$repo' the repository?)"

tmp=$(mktemp -d /tmp/sw-local.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
export STAGEWISE_BIN=$bin

# expect STATUS NAME COMMAND...: run it (output in $tmp/NAME.log), fail unless it exits STATUS.
expect() {
  local want=$1 name=$2 got=0
  shift 2
  timeout 120 "$@" >"$tmp/$name.log" 2>&1 || got=$?
  if ((got != want)); then
    echo "----- output of '$name' -----" >&2
    tail -n 30 "$tmp/$name.log" >&2
    fail "$name: exit status $got, expected $want"
  fi
}

# 1. A real run: exit 0, metrics written, one stdout/stderr pair per rank under RUNDIR/logs.
expect 0 train bash "$launcher" "$ranks" "$config" train.algo="$algo" train.epochs=1 --out "$tmp/run"
grep -q '"split": "test"' "$tmp/run/metrics.jsonl" || fail "no test line in $tmp/run/metrics.jsonl"
for ((r = 0; r < ranks; r++)); do
  dir=$(find "$tmp/run/logs" -type d -name "rank.$r" | head -n 1)
  [[ -n $dir && -f $dir/stdout && -f $dir/stderr ]] ||
    fail "no per-rank log files for rank $r under $tmp/run/logs"
  ((r > 0)) || rank0=$dir
done
cat -- "$rank0/stdout" "$rank0/stderr" | grep -q '^done' || fail "rank 0's log has no 'done' line"

# 2. Bad input: an unknown config key is the trainer's exit 2, passed through mpirun.
expect 2 bad_key bash "$launcher" "$ranks" "$config" train.no_such_key=1 --out "$tmp/bad"
grep -q 'no_such_key' "$tmp/bad_key.log" || fail "the bad-key error does not name the key"

# 3. Bad launcher arguments: exit 2 with a usage line.
expect 2 bad_n bash "$launcher" 0 "$config"
grep -q '^usage:' "$tmp/bad_n.log" || fail "no usage line for a bad rank count"
expect 2 no_config bash "$launcher" 1 "$tmp/missing.ini"
expect 0 help bash "$launcher" --help

# 4. A rank killed by a signal (a stand-in binary that crashes) is a run failure: exit 3.
cat >"$tmp/crash.sh" <<'EOF'
#!/usr/bin/env bash
kill -SEGV $$
EOF
chmod +x "$tmp/crash.sh"
STAGEWISE_BIN=$tmp/crash.sh expect 3 crash bash "$launcher" 1 "$config" --out "$tmp/crash"
grep -q 'ended abnormally' "$tmp/crash.log" || fail "no 'ended abnormally' message for a crashed rank"

echo "PASS: launch/local.sh ($ranks rank(s), train.algo=$algo): exit 0/2/3 contract and per-rank logs"
