#!/usr/bin/env bash
# Resident memory of encore-serve across model reloads, on the 100k customers
# x 20k items model of bench/load.sh: the store holds that artifact twice
# (versions mem-a and mem-b) and CURRENT alternates between them; the
# server's RSS is read from /proc after 0, 1, 5, 10, 20 and 30 reloads.
#
#   bench/reload_memory.sh [RUNS]          # default 3 runs; prints each and the medians
#
# Environment: WORK [/tmp/encore-load] (shared with bench/load.sh: its trained
# model WORK/model is reused when present), PORT [18191], SERVER_WORKERS [2],
# RELOADS [1,5,10,20,30], TRAFFIC [1]: keep a few requests running during the
# reloads (wrk with 8 connections if installed, else a curl loop), as a
# serving process would have. Any MALLOC_* variable set in the environment
# (e.g. MALLOC_ARENA_MAX=2) reaches the server, to compare allocator settings.
# NO_BUILD=1 uses the binaries already in CARGO_TARGET_DIR (or target/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
RUNS="${1:-3}"
set_defaults WORK=/tmp/encore-load PORT=18191 SERVER_WORKERS=2 RELOADS=1,5,10,20,30 TRAFFIC=1

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)"
    (cd "$ROOT" && cargo build --release --locked -q -p encore-training -p encore-serving -p encore-data --bins --example synth)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ensure_load_model "$BIN" "$WORK"
MEM="$WORK/reload-memory"
STORE="$MEM/store"
rm -rf "$MEM"
two_version_store "$WORK/model" "$STORE" mem-a mem-b
write_id_lists "$WORK/model" "$MEM"
ARTIFACT=$(du -sb "$WORK/model" | cut -f1)
ARRAYS=$(python3 -c 'import json,sys; print(sum(f["bytes"] for f in json.load(open(sys.argv[1]))["files"].values()))' "$WORK/model/manifest.json")
echo "== artifact: $((ARTIFACT / 1048576)) MiB on disk, $((ARRAYS / 1048576)) MiB of files listed in the manifest"
env | grep '^MALLOC_' | sed 's/^/== allocator setting: /' || true

BASE="http://127.0.0.1:$PORT"
SERVER=""
LOADER=""
cleanup() {
    [[ -n "$LOADER" ]] && kill "$LOADER" 2>/dev/null || true
    [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

rss_mib() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$SERVER/status"; }
succeeded() { curl -sf "$BASE/v1/model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"]["succeeded"])'; }
set_current() { # what `models promote` does, without loading the model a third time
    printf '%s\n' "$1" >"$STORE/CURRENT.tmp" && mv "$STORE/CURRENT.tmp" "$STORE/CURRENT"
}

IFS=, read -r -a CHECKPOINTS <<<"$RELOADS"
LAST=${CHECKPOINTS[${#CHECKPOINTS[@]} - 1]}
RESULTS="$MEM/results.txt"
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    set_current mem-a
    "$BIN/encore-serve" --store "$STORE" --bind "127.0.0.1:$PORT" --workers "$SERVER_WORKERS" \
        --watch-interval 0.2 >"$MEM/serve.out" 2>"$MEM/serve.err" &
    SERVER=$!
    for _ in $(seq 300); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf "$BASE/readyz" >/dev/null || { echo "server did not become ready"; cat "$MEM/serve.err"; exit 1; }
    if [[ "$TRAFFIC" == 1 ]]; then
        if command -v wrk >/dev/null; then
            ITEMS="$MEM/items.txt" CUSTOMERS="$MEM/customers.txt" VERSIONS="mem-a,mem-b" \
                wrk -t1 -c8 -d3600s -s "$ROOT/bench/load.lua" "$BASE" >/dev/null 2>&1 &
        else
            (while :; do
                curl -s -o /dev/null "$BASE/v1/items/$(shuf -n1 "$MEM/items.txt")/similar?k=10"
                curl -s -o /dev/null "$BASE/v1/customers/$(shuf -n1 "$MEM/customers.txt")/recommendations?k=10"
            done) &
        fi
        LOADER=$!
    fi
    sleep 1
    line="run $run: 0:$(rss_mib)"
    for n in $(seq "$LAST"); do
        if (( n % 2 )); then set_current mem-b; else set_current mem-a; fi
        for _ in $(seq 600); do [[ "$(succeeded)" == "$n" ]] && break; sleep 0.1; done
        [[ "$(succeeded)" == "$n" ]] || { echo "reload $n did not happen"; tail "$MEM/serve.err"; exit 1; }
        for c in "${CHECKPOINTS[@]}"; do
            if [[ "$c" == "$n" ]]; then sleep 1; line="$line $n:$(rss_mib)"; fi
        done
    done
    echo "$line" | tee -a "$RESULTS"
    if [[ -n "$LOADER" ]]; then kill "$LOADER" 2>/dev/null || true; wait "$LOADER" 2>/dev/null || true; LOADER=""; fi
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
done
echo "== server RSS in MiB after N reloads (median of $RUNS runs; artifact $((ARTIFACT / 1048576)) MiB, 2x = $((2 * ARTIFACT / 1048576)) MiB)"
python3 - "$RESULTS" <<'PY'
import statistics, sys
runs = [dict(kv.split(":") for kv in l.split(": ", 1)[1].split()) for l in open(sys.argv[1]) if l.strip()]
print("  ".join(f"{n} reloads: {statistics.median(int(r[n]) for r in runs)}" for n in runs[0]))
PY
