#!/usr/bin/env bash
# Throughput of POST /v1/events on loopback with wrk (Debian package): batches
# of BATCH purchase events with fresh ids, at 1, 8 and 32 connections, each
# run DURATION seconds. Every batch is fsynced before its answer; concurrent
# batches share one fsync. After each run the script counts the lines of the
# event log: at least every acknowledged event, and at most the batches that
# were in flight when wrk stopped (one per connection) more.
#
#   bench/events_load.sh [DURATION_SECS]      # default 10
#
# Environment: WORK [/tmp/encore-events-load] BATCH [10] PORT [18195]
# SERVER_WORKERS [2] BIN [target/release, built; another build's directory
# to measure it instead]. The model is the bundled sample's (trained once into
# WORK/model). The log lives in WORK/events, on the disk of WORK: its fsync
# speed decides the figures.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
DURATION="${1:-10}"
set_defaults WORK=/tmp/encore-events-load BATCH=10 PORT=18195 SERVER_WORKERS=2
export BATCH
ensure_wrk
ensure_bin "$ROOT"
ensure_sample_model "$BIN" "$ROOT" "$WORK"
rm -rf "$WORK/events"
"$BIN/encore-serve" --model "$WORK/model" --events "$WORK/events" --bind "127.0.0.1:$PORT" \
    --workers "$SERVER_WORKERS" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
total=0
inflight=0
for c in 1 8 32; do
    export RUN="c$c"
    out=$(wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$ROOT/bench/events_load.lua" "http://127.0.0.1:$PORT")
    acked=$(sed -n 's/^acknowledged \([0-9]*\) batches.*/\1/p' <<<"$out")
    notok=$(sed -n 's/^acknowledged [0-9]* batches, \([0-9]*\) not 200/\1/p' <<<"$out")
    lat=$(grep p50_ms <<<"$out")
    total=$((total + acked * BATCH))
    inflight=$((inflight + c * BATCH))
    lines=$(cat "$WORK"/events/events-*.jsonl | wc -l)
    echo "$c connections: $((acked / DURATION)) batches/s, $((acked * BATCH / DURATION)) events/s, $lat, $notok not 200; log lines $lines, acknowledged events so far $total"
    if (( lines < total || lines > total + inflight || notok != 0 )); then
        echo "FAIL: the log holds $lines lines for $total acknowledged events (at most $inflight more allowed)" >&2
        exit 1
    fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
