#!/usr/bin/env bash
# A fully cached rerun ("no-op") of a 10,000-step layered pipeline: 100 layers of 100
# steps, each step reading two steps of the layer before. labrun reads it in two forms:
# written out one step per line (10,000 lines), and as a sweep, one `for` line per layer
# (100 lines; the same steps, so the two forms share their cache entries). The rerun is
# timed as a whole process beside ninja's no-op (Debian's `ninja-build`) and Snakemake's
# dry run (from PyPI) on the same DAG, when they are installed, in one run: wall time
# (median of 9) and peak memory. Also the cold first run of labrun per step.
# `LABRUN_TIMINGS=1 labrun run FILE` prints where the time of one run goes, by phase.
#
# Usage: benches/noop.sh   (SNAKEMAKE=/path/to/snakemake to pick one; builds labrun first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="$PWD/target/release/labrun"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
layers=100
width=100

# labrun: layer 0 is noise, every later step summarises two steps of the layer before.
{
  for i in $(seq 0 $((width - 1))); do echo "x0_$i = generate.noise(shape: [1], count: 2, seed: $i)"; done
  for k in $(seq 1 $((layers - 1))); do
    for i in $(seq 0 $((width - 1))); do
      j=$(((i + 1) % width))
      if [ "$k" -eq 1 ]; then
        echo "x1_$i = score.stats(x0_$i)"
      else
        echo "x${k}_$i = score.summary([x$((k - 1))_$i, x$((k - 1))_$j], metric: \"mean\")"
      fi
    done
  done
} >"$work/layers.lab"
steps=$(wc -l <"$work/layers.lab")

# The same DAG as sweeps: one line per layer.
{
  echo "for i in 0..$width { x0[i] = generate.noise(shape: [1], count: 2, seed: i) }"
  echo "for i in 0..$width { x1[i] = score.stats(x0[i]) }"
  for k in $(seq 2 $((layers - 1))); do
    echo "for i in 0..$width { x$k[i] = score.summary([x$((k - 1))[i], x$((k - 1))[(i + 1) % $width]], metric: \"mean\") }"
  done
} >"$work/sweep.lab"

# ninja: the same edges, each step a `cat` of its inputs.
mkdir -p "$work/ninja"
{
  echo "rule base"
  echo "  command = echo \$seed > \$out"
  echo "rule step"
  echo "  command = cat \$in | head -c 64 > \$out"
  for i in $(seq 0 $((width - 1))); do echo "build x0_$i: base"; echo "  seed = $i"; done
  for k in $(seq 1 $((layers - 1))); do
    for i in $(seq 0 $((width - 1))); do
      j=$(((i + 1) % width))
      echo "build x${k}_$i: step x$((k - 1))_$i x$((k - 1))_$j"
    done
  done
} >"$work/ninja/build.ninja"

# Snakemake: one rule per layer kind, inputs by a function of the wildcards.
mkdir -p "$work/snake"
cat >"$work/snake/Snakefile" <<SNAKE
W = $width
L = $layers
wildcard_constraints:
    k="[0-9]+",
    i="[0-9]+"
def deps(w):
    k, i = int(w.k), int(w.i)
    return [f"x{k-1}_{i}", f"x{k-1}_{(i+1) % W}"]
rule all:
    input: expand("x{k}_{i}", k=[L - 1], i=range(W))
rule base:
    output: "x0_{i}"
    shell: "echo {wildcards.i} > {output}"
rule step:
    input: deps
    output: "x{k,[1-9][0-9]*}_{i}"
    shell: "cat {input} | head -c 64 > {output}"
SNAKE

measure() { # measure DIR CMD…: "median_seconds peak_MiB" over 9 runs
  # Wall time from bash's microsecond clock (no fork to read it); peak memory from the
  # same runs under /usr/bin/time.
  local dir=$1
  shift
  local times=() mem=0 t0 t1 m
  for _ in 1 2 3 4 5 6 7 8 9; do
    t0=$EPOCHREALTIME
    (cd "$dir" && /usr/bin/time -o "$work/time.txt" -f "%M" "$@" >/dev/null 2>&1) || true
    t1=$EPOCHREALTIME
    times+=("$(echo "$t1 - $t0" | bc -l)")
    m=$(tail -1 "$work/time.txt")
    if [ "$m" -gt "$mem" ]; then mem=$m; fi
  done
  echo "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p) $((mem / 1024))"
}

cold_start=$(date +%s.%N)
"$bin" run "$work/layers.lab" --cache "$work/cache" --results "$work/r" >/dev/null 2>&1
cold=$(echo "$(date +%s.%N) - $cold_start" | bc -l)
# The sweep form names its steps differently but computes the same actions: all cached.
"$bin" run "$work/sweep.lab" --cache "$work/cache" --results "$work/r2" >/dev/null 2>&1
read -r l_t l_m < <(measure "$work" "$bin" run "$work/layers.lab" --cache "$work/cache" --results "$work/r")
read -r w_t w_m < <(measure "$work" "$bin" run "$work/sweep.lab" --cache "$work/cache" --results "$work/r2")
read -r c_t c_m < <(measure "$work" "$bin" check "$work/layers.lab")
echo "| tool | fully cached rerun of $steps steps | peak memory | vs labrun (lines / sweep) |"
echo "|---|---|---|---|"
printf '| labrun run, one line per step | %.3f s | %d MiB | 1x |\n' "$l_t" "$l_m"
printf '| labrun run, one sweep per layer | %.3f s | %d MiB | 1x |\n' "$w_t" "$w_m"
printf '| labrun check, one line per step (parse, check, plan; no cache) | %.3f s | %d MiB | |\n' "$c_t" "$c_m"
if command -v ninja >/dev/null; then
  (cd "$work/ninja" && ninja -j 2 >/dev/null)
  read -r n_t n_m < <(measure "$work/ninja" ninja -j 2)
  printf '| ninja (no-op) | %.3f s | %d MiB | %.1fx / %.1fx faster |\n' "$n_t" "$n_m" "$(echo "$l_t / $n_t" | bc -l)" "$(echo "$w_t / $n_t" | bc -l)"
fi
snake="${SNAKEMAKE:-$(command -v snakemake || true)}"
if [ -n "$snake" ]; then
  # Outputs made in layer order (each newer than its inputs): nothing is left to do.
  (cd "$work/snake" && for k in $(seq 0 $((layers - 1))); do for i in $(seq 0 $((width - 1))); do echo "$k $i" >"x${k}_$i"; done; done)
  read -r s_t s_m < <(measure "$work/snake" "$snake" -n --cores 1 --quiet)
  printf '| Snakemake (dry run) | %.3f s | %d MiB | %.0fx / %.0fx slower |\n' "$s_t" "$s_m" "$(echo "$s_t / $l_t" | bc -l)" "$(echo "$s_t / $w_t" | bc -l)"
fi
printf '\nlabrun cold first run: %.1f s for %d steps, %.2f ms per step\n' "$cold" "$steps" "$(echo "$cold * 1000 / $steps" | bc -l)"
