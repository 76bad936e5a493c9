#!/usr/bin/env bash
# How a fit grows with the shop: `encore-train fit --no-eval` with the
# default configuration on seeded synthetic histories (the `synth` example) of
# 100k, 300k and 1M customers x 50k items x 5M, 15M and 50M purchase lines.
# Prints each run's wall time, peak resident memory and stage times, then the
# medians per size and the growth against the smallest size (time per line
# and memory per customer), so a cost that grows faster than the data shows.
#
#   bench/scale.sh [SIZE ...]     # sizes: 100k 300k 1m (default all three)
#
# Environment: RUNS [2] fits per size (the median is reported), WORK
# [/tmp/encore-scale] for the histories (about 2.7 GB for 1m, kept and reused)
# and the models (removed after each run; KEEP=1 keeps each size's last model
# as WORK/model-SIZE, e.g. for bench/serve_scale.sh), NO_BUILD=1 uses the binaries
# already in CARGO_TARGET_DIR (or target/). The 1m size is the slow one (its
# ingest and the re-ranker's inner fits alone take several minutes on 2
# cores); the histories are generated once.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-2}"
WORK="${WORK:-/tmp/encore-scale}"
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(100k 300k 1m)

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)"
    (cd "$ROOT" && cargo build --release --locked -q -p encore-training -p encore-serving -p encore-data --bins --example synth)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
mkdir -p "$WORK"

# customers and purchase lines of a size name
dims() {
    case "$1" in
        100k) echo "100000 5000000" ;;
        300k) echo "300000 15000000" ;;
        1m) echo "1000000 50000000" ;;
        *) echo "unknown size '$1' (one of 100k 300k 1m)" >&2; exit 2 ;;
    esac
}

results="$WORK/results.tsv"
: > "$results"
for size in "${SIZES[@]}"; do
    read -r customers lines < <(dims "$size")
    history="$WORK/synth-$size.csv"
    if [[ ! -s "$history" ]]; then
        echo "== generating $size: $customers customers x 50000 items x $lines lines"
        "$BIN/examples/synth" "$history.tmp" --customers "$customers" --items 50000 --purchases "$lines"
        mv "$history.tmp" "$history"
    fi
    for run in $(seq 1 "$RUNS"); do
        out="$WORK/model-$size"
        rm -rf "$out"
        log="$WORK/fit-$size-$run.log"
        echo "== fit $size, run $run of $RUNS"
        /usr/bin/time -f 'TIME %e %M' -o "$WORK/time-$size-$run" \
            "$BIN/encore-train" fit --input "$history" --out "$out" --no-eval \
            --rejects "$WORK/rejects-$size.csv" > "$log" 2>&1 || {
            echo "fit failed, see $log" >&2
            tail -5 "$log" >&2
            exit 1
        }
        read -r _ wall kb < "$WORK/time-$size-$run"
        # The fit summary's stage times: "time  T s (matrix 0.7s, als 4.2s, ...)".
        stages=$(sed -n 's/^  time *[0-9.]*s (\(.*\))$/\1/p' "$log")
        lists=$(sed -n 's/^  for you *//p' "$log")
        artifact=$(sed -n 's/^  artifact *//p' "$log")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$customers" "$lines" "$wall" "$kb" \
            "$stages" "$artifact" "$lists" >> "$results"
        printf '   %s s wall, %.2f GiB peak; %s\n   stages: %s\n   for you: %s\n' \
            "$wall" "$(awk -v k="$kb" 'BEGIN { print k / 1048576 }')" "$artifact" "$stages" "$lists"
        if [[ "${KEEP:-0}" != 1 || "$run" != "$RUNS" ]]; then rm -rf "$out"; fi
    done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
sizes = []
by = {}
for size, customers, lines, wall, kb, stages, artifact, lists in rows:
    if size not in by:
        sizes.append(size)
        by[size] = dict(customers=int(customers), lines=int(lines), wall=[], gb=[], stages=[], artifact=artifact, lists=lists)
    by[size]["wall"].append(float(wall))
    by[size]["gb"].append(int(kb) / 1048576)
    by[size]["stages"].append(stages)
print()
print("| customers | lines | runs | wall (median) | peak RSS (median) | s per 1M lines | KB per customer | for you |")
print("|---|---|---|---|---|---|---|---|")
for s in sizes:
    d = by[s]
    w, g = statistics.median(d["wall"]), statistics.median(d["gb"])
    print(f"| {d['customers']:,} | {d['lines']:,} | {len(d['wall'])} | {w:.0f} s | {g:.2f} GiB "
          f"| {w / d['lines'] * 1e6:.1f} | {g * 1048576 / d['customers']:.1f} | {d['lists'].split(' ')[0]} {d['lists'].split('(')[1].split(')')[0] if '(' in d['lists'] else ''} |")
if len(sizes) > 1:
    a = by[sizes[0]]
    print()
    for s in sizes[1:]:
        d = by[s]
        lines_ratio = d["lines"] / a["lines"]
        print(f"{s} against {sizes[0]}: {lines_ratio:.0f}x the lines, "
              f"{statistics.median(d['wall']) / statistics.median(a['wall']):.2f}x the wall time, "
              f"{statistics.median(d['gb']) / statistics.median(a['gb']):.2f}x the peak memory")
print()
for s in sizes:
    print(f"{s} stages (run 1): {by[s]['stages'][0]}")
PY
