#!/usr/bin/env bash
# What an event log of EVENTS lines costs the server's start: a seeded log of
# exposure events (the bulk of a real log: one per storefront list shown,
# 10 items each, ~277 bytes a line) is written once, then encore-serve starts
# on it RUNS times; each start prints the seconds until /readyz answers and
# the server's peak and current resident memory then (VmHWM, VmRSS).
#
#   bench/events_start.sh [EVENTS]      # default 1000000
#
# Environment: WORK [/tmp/encore-events-start] RUNS [3] PORT [18196]
# BIN [CARGO_TARGET_DIR/release, or target/release, built]: the binaries'
# directory; SERVE_BIN [$BIN/encore-serve]: another encore-serve to compare,
# e.g. a build of an earlier commit. The model is the bundled sample's (trained
# once into WORK/model). Each start gets a fresh copy of the log.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
EVENTS="${1:-1000000}"
set_defaults WORK=/tmp/encore-events-start RUNS=3 PORT=18196
ensure_bin "$ROOT"
SERVE="${SERVE_BIN:-$BIN/encore-serve}"
[[ -x "$SERVE" ]] || { echo "$0: SERVE_BIN is not an executable: $SERVE" >&2; exit 2; }
ensure_sample_model "$BIN" "$ROOT" "$WORK"
LOG="$WORK/log-$EVENTS"
if [[ ! -f "$LOG/events-00000001.jsonl" ]]; then
    echo "== writing $EVENTS exposure events"
    mkdir -p "$LOG"
    write_exposures "$LOG/events-00000001.jsonl" "$EVENTS"
fi
echo "== $RUNS starts of $SERVE on $(du -h "$LOG" | cut -f1) of events"
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/events" && cp -r "$LOG" "$WORK/events"
    start=$(date +%s.%N)
    "$SERVE" --model "$WORK/model" --events "$WORK/events" --bind "127.0.0.1:$PORT" \
        >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
    end=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
    printf 'run %d: ready after %.1f s, peak RSS %d MiB, RSS %d MiB\n' \
        "$run" "$(python3 -c "print($end - $start)")" $((hwm / 1024)) $((rss / 1024))
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
done
