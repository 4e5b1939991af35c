#!/usr/bin/env bash
# The Slurm executor against the local one, on a real cluster (start one with
# `eval "$(scripts/slurm-cluster start)"`). Two pipelines, each run cold in a fresh cache
# with both executors, in the same session:
#   - a sweep of N tiny independent steps (default 1,000): how many jobs labrun submits,
#     and the wall time;
#   - a chain of 10 dependent tiny steps: the latency each step adds (every step waits for
#     the one before, so nothing can be batched).
# Usage: benches/slurm.sh [N]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
sinfo -h >/dev/null || { echo "no Slurm cluster answers; start one: eval \"\$(scripts/slurm-cluster start)\"" >&2; exit 2; }
cargo build --release --quiet
bin="$PWD/target/release/labrun"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf 'param n = %s\nfor i in 0..n {\n  x[i] = generate.noise(shape: [4], count: 10, seed: i)\n}\n' "$n" >"$work/sweep.lab"
{
  echo 'x0 = generate.noise(shape: [4], count: 10, seed: 0)'
  for i in $(seq 1 9); do echo "x$i = filter.take(x$((i - 1)), count: 10, seed: $i)"; done
} >"$work/chain.lab"

secs() { # secs CMD…: wall seconds of a command
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

row() { # row NAME STEPS
  local name=$1 steps=$2
  local lt st jobs
  lt=$(secs "$bin" run "$work/$name.lab" --cache "$work/c-local-$name" --results "$work/r")
  st=$(secs "$bin" run "$work/$name.lab" --cache "$work/c-slurm-$name" --results "$work/r" --executor slurm)
  jobs=$(wc -l <"$work/c-slurm-$name/slurm/submitted.log")
  printf '| %s | %d | %.2f s | %.2f s | %d | %.1f ms |\n' "$name" "$steps" "$lt" "$st" "$jobs" \
    "$(echo "($st - $lt) * 1000 / $steps" | bc -l)"
}

echo "| pipeline | steps | local | slurm | jobs submitted | slurm overhead per step |"
echo "|---|---|---|---|---|---|"
row sweep "$n"
row chain 10
