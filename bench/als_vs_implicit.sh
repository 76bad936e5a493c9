#!/usr/bin/env bash
# ALS benchmark: Encore against the `implicit` library (0.7.2, conjugate gradient),
# same matrix, same parameters, same run. Prints medians of N alternating runs
# (default 3) and the ratio Encore / implicit for training time, and both
# batch-recommend speeds and peak RSS.
#
#   bench/als_vs_implicit.sh [RUNS]
#
# Matrix: seeded synthetic, 100k users x 20k items, ~5M non-zeros, power-law
# popularity (model/examples/als_bench.rs). Model: 64 factors, 15 iterations,
# regularization 0.01, 3 CG steps, 2 threads. implicit is installed into a
# virtual environment under /tmp on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
venv=/tmp/encore-bench-venv
matrix=/tmp/encore-bench-matrix

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import implicit' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q implicit==0.7.2 numpy scipy threadpoolctl
fi
cargo build --release --locked -q -p encore-model --example als_bench
bin=./target/release/examples/als_bench
[ -f "$matrix/shape.txt" ] || "$bin" --write "$matrix"

enc=(); imp=(); enc_rec=(); imp_rec=(); enc_rss=(); imp_rss=()
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
for i in $(seq "$runs"); do
  e=$("$bin" --read "$matrix" --threads 2 | grep '^RESULT')
  p=$(OPENBLAS_NUM_THREADS=1 "$venv/bin/python" bench/als_implicit.py --read "$matrix" --threads 2 | grep '^RESULT')
  echo "run $i encore:   $e"
  echo "run $i implicit: $p"
  enc+=("$(field train_s "$e")"); imp+=("$(field train_s "$p")")
  enc_rec+=("$(field rec_users_per_s "$e")"); imp_rec+=("$(field rec_users_per_s "$p")")
  enc_rss+=("$(field rss_mib "$e")"); imp_rss+=("$(field rss_mib "$p")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
me=$(median "${enc[@]}"); mi=$(median "${imp[@]}")
re=$(median "${enc_rec[@]}"); ri=$(median "${imp_rec[@]}")
echo
echo "median of $runs runs          encore     implicit   ratio encore/implicit"
awk -v a="$me" -v b="$mi" 'BEGIN {printf "train seconds            %9.2f  %9.2f   %.3f\n", a, b, a/b}'
awk -v a="$re" -v b="$ri" 'BEGIN {printf "recommend users/s        %9.0f  %9.0f   %.3f\n", a, b, a/b}'
awk -v a="$(median "${enc_rss[@]}")" -v b="$(median "${imp_rss[@]}")" 'BEGIN {printf "peak RSS MiB             %9.1f  %9.1f   %.3f\n", a, b, a/b}'
