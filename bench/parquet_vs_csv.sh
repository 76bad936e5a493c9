#!/usr/bin/env bash
# Ingest time of the same purchase history as CSV and as Parquet: wall time
# and peak RSS of the `ingest` example (read_purchases, the path every
# encore-train command takes), median of RUNS runs each, and the ratio
# Parquet / CSV.
#
#   bench/parquet_vs_csv.sh [LINES]            # 5M lines (the default)
#   bench/parquet_vs_csv.sh 50000000           # 50M lines: ~3.5 GB of CSV, a few minutes per run
#   LINES=100000 RUNS=1 bench/parquet_vs_csv.sh    # smoke test
#
# Environment (defaults in brackets): LINES [5000000, or the first argument]
# CUSTOMERS [LINES/50] ITEMS [20000] SEED [42] RUNS [3] COMPRESSION [snappy]
# PARTS [1; N > 1 writes a directory of N part files] DATA [/tmp/encore-parquet-bench/<LINES>]
#
# The history is generated once (the seeded `synth` example, canonical CSV,
# plain text) and converted once by the `csv_to_parquet` example (string ids,
# Timestamp(µs, UTC), Float64 quantity and price: a warehouse export's
# types); both are reused while present. The two formats are read
# alternately, so both see the same page cache and machine load. Every run's
# summary line is checked to report the same rows, customers and items.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
LINES="${1:-${LINES:-5000000}}"
set_defaults CUSTOMERS="$((LINES / 50 > 0 ? LINES / 50 : 1))" ITEMS=20000 SEED=42 RUNS=3 \
    COMPRESSION=snappy PARTS=1 DATA="/tmp/encore-parquet-bench/$LINES"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/examples"
LOG="$(mktemp -d /tmp/encore-parquet-bench-log.XXXXXX)"

ensure_gnu_time

echo "== building the examples (release)"
(cd "$ROOT" && cargo build --release --quiet -p encore-data \
    --example synth --example csv_to_parquet --example ingest)

mkdir -p "$DATA"
CSV="$DATA/history.csv"
if [[ "$PARTS" -gt 1 ]]; then
    PQ="$DATA/history-$COMPRESSION-$PARTS"
else
    PQ="$DATA/history-$COMPRESSION.parquet"
fi
if [[ ! -f "$CSV" ]]; then
    echo "== generating $LINES lines ($CUSTOMERS customers x $ITEMS items, seed $SEED)"
    "$BIN/synth" "$CSV" --customers "$CUSTOMERS" --items "$ITEMS" --purchases "$LINES" --seed "$SEED"
fi
if [[ ! -e "$PQ" ]]; then
    echo "== converting to Parquet ($COMPRESSION, $PARTS part(s))"
    "$BIN/csv_to_parquet" "$CSV" "$PQ" --compression "$COMPRESSION" --parts "$PARTS"
fi
echo "== sizes: CSV $(du -sh "$CSV" | cut -f1), Parquet $(du -sh "$PQ" | cut -f1)"

run() { # name run-number input
    local name="$1" n="$2" input="$3"
    /usr/bin/time -f "TIME %e %M" "$BIN/ingest" "$input" --rejects "$LOG/$name.rejects.csv" \
        >"$LOG/$name.$n.out" 2>"$LOG/$name.$n.err" || {
        cat "$LOG/$name.$n.err" >&2
        echo "$name run $n failed" >&2
        exit 1
    }
    local t rss
    read -r t rss < <(awk '/^TIME/ {print $2, $3}' "$LOG/$name.$n.err")
    echo "$t $rss" >>"$LOG/$name.times"
    echo "  $name #$n: ${t} s, peak RSS $((rss / 1024)) MiB;" \
        "$(grep -E '^read ' "$LOG/$name.$n.out" | sed 's/^read [^:]*: //')"
}

echo "== timed runs (alternating)"
for n in $(seq 1 "$RUNS"); do
    run csv "$n" "$CSV"
    run parquet "$n" "$PQ"
done

# Both formats must have read the same history.
same() { grep -E 'customers, .* items, .* orders' "$LOG/$1.1.out"; }
if [[ "$(same csv)" != "$(same parquet)" ]]; then
    echo "the two formats read different histories:" >&2
    same csv >&2
    same parquet >&2
    exit 1
fi

median() { # file column
    sort -n -k"$2","$2" "$1" | awk -v c="$2" '{v[NR] = $c} END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
csv_t="$(median "$LOG/csv.times" 1)"
pq_t="$(median "$LOG/parquet.times" 1)"
csv_m="$(median "$LOG/csv.times" 2)"
pq_m="$(median "$LOG/parquet.times" 2)"
echo
echo "== medians over $RUNS runs each ($LINES lines)"
printf '%-28s %12s %12s %16s\n' "" "CSV" "Parquet" "Parquet/CSV"
printf '%-28s %12.2f %12.2f %16.3f\n' "ingest wall time (s)" "$csv_t" "$pq_t" \
    "$(awk -v a="$pq_t" -v b="$csv_t" 'BEGIN {print a / b}')"
printf '%-28s %12d %12d %16.3f\n' "peak RSS (MiB)" "$((csv_m / 1024))" "$((pq_m / 1024))" \
    "$(awk -v a="$pq_m" -v b="$csv_m" 'BEGIN {print a / b}')"
echo
echo "logs: $LOG"
