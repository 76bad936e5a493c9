#!/usr/bin/env bash
# Encore ALS vs the Python `implicit` library (0.7.2, CG solver) on the same
# matrix: training wall time, peak RSS and batch-recommend throughput.
#
#   bench/als_vs_implicit.sh [RUNS]          # 100k users x 20k items, ~5M nonzeros
#   RUNS=5 THREADS=2 bench/als_vs_implicit.sh
#   USERS=2000 ITEMS=500 NNZ=40000 ITERATIONS=3 RUNS=1 bench/als_vs_implicit.sh   # smoke test
#
# Environment (defaults in brackets): USERS [100000] ITEMS [20000] NNZ [5000000]
# FACTORS [64] REG [0.01] ITERATIONS [15] CG_STEPS [3] THREADS [2] K [10]
# RUNS [3, or the first argument] DATA [/tmp/encore-als-bench/<size>] VENV [/tmp/encore-bench-venv]
#
# The Rust example generates the matrix once and writes it as raw little-endian
# arrays; both sides read those files. implicit gets confidences 1 + alpha*r, so
# both minimise the same objective (the final losses are printed to check).
# The two are run alternately RUNS times each; medians are reported. Peak RSS
# is /usr/bin/time's maximum resident set size of the whole process.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
set_defaults USERS=100000 ITEMS=20000 NNZ=5000000 FACTORS=64 REG=0.01 ITERATIONS=15 \
    CG_STEPS=3 THREADS=2 K=10 VENV=/tmp/encore-bench-venv
RUNS="${1:-${RUNS:-3}}"
DATA="${DATA:-/tmp/encore-als-bench/${USERS}x${ITEMS}x${NNZ}}"
LOG="$(mktemp -d /tmp/encore-als-bench-log.XXXXXX)"

ensure_gnu_time
ensure_implicit_venv "$VENV"

echo "== building the example (release)"
(cd "$ROOT" && cargo build --release --quiet -p encore-model --example als_bench)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/als_bench"

if [[ ! -f "$DATA/shape.txt" ]]; then
    echo "== generating the matrix into $DATA"
    "$BIN" --users "$USERS" --items "$ITEMS" --nnz "$NNZ" --write "$DATA"
fi
echo "== matrix: $(cat "$DATA/shape.txt") (rows cols nnz)"

common=(--read "$DATA" --factors "$FACTORS" --reg "$REG" --iterations "$ITERATIONS"
    --cg-steps "$CG_STEPS" --threads "$THREADS" --k "$K")

run() { # name run-number command...
    local name="$1" n="$2"
    shift 2
    /usr/bin/time -f "MAXRSS_KB %M" "$@" >"$LOG/$name.$n.out" 2>"$LOG/$name.$n.err" || {
        cat "$LOG/$name.$n.err" >&2
        echo "$name run $n failed" >&2
        exit 1
    }
    echo "  $name #$n: $(grep '^RESULT' "$LOG/$name.$n.out" | cut -c8-)" \
        "maxrss_kb=$(awk '/^MAXRSS_KB/ {print $2}' "$LOG/$name.$n.err")"
}

# One run each with the loss, to check both solve the same problem (not timed).
echo "== objective check (1 run each, not part of the timings)"
OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" "$ROOT/bench/als_implicit.py" "${common[@]}" \
    --no-recommend --loss | grep -E '^loss'
"$BIN" "${common[@]}" --no-recommend --loss | grep -E '^loss'

echo "== timed runs (alternating)"
for n in $(seq 1 "$RUNS"); do
    run implicit "$n" env OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" \
        "$ROOT/bench/als_implicit.py" "${common[@]}"
    run encore "$n" "$BIN" "${common[@]}"
done

"$VENV/bin/python" - "$LOG" "$RUNS" <<'EOF'
import glob, statistics, sys

log, runs = sys.argv[1], int(sys.argv[2])

def collect(name):
    rows = []
    for n in range(1, runs + 1):
        out = open(f"{log}/{name}.{n}.out").read()
        line = [l for l in out.splitlines() if l.startswith("RESULT")][-1]
        kv = dict(p.split("=") for p in line.split()[1:])
        err = open(f"{log}/{name}.{n}.err").read()
        kv["maxrss_mib"] = int(err.split("MAXRSS_KB")[-1].split()[0]) / 1024
        rows.append({k: float(v) for k, v in kv.items()})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}

imp, enc = collect("implicit"), collect("encore")
print(f"\n== medians over {runs} runs each")
fmt = "{:<34} {:>12} {:>12} {:>16}"
print(fmt.format("", "implicit", "encore", "encore/implicit"))
for key, label in [
    ("train_s", "training wall time (s)"),
    ("iter_s", "median iteration (s)"),
    ("maxrss_mib", "peak RSS, whole process (MiB)"),
    ("rss_train_mib", "peak RSS after training (MiB)"),
    ("rec_s", "recommend all users (s)"),
    ("rec_users_per_s", "recommend throughput (users/s)"),
]:
    i, e = imp[key], enc[key]
    print(fmt.format(label, f"{i:.3f}" if i < 100 else f"{i:.0f}",
                     f"{e:.3f}" if e < 100 else f"{e:.0f}", f"{e / i:.3f}"))
print(f"\nlogs: {log}")
EOF
