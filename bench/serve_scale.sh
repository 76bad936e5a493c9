#!/usr/bin/env bash
# Serving a large model: load time, resident memory after load and at the
# peak of a reload, throughput and latency of for-you and similar-items
# requests, and a swap of the model under load.
#
#   bench/serve_scale.sh MODEL_DIR [RUNS]     # default 3 runs of each load
#
# MODEL_DIR is an artifact written by `encore-train fit` (e.g. the 300k or
# 1M customers model of bench/scale.sh). The store under WORK holds it twice
# (versions scale-a and scale-b, copies, so a reload maps other files); the
# server starts on scale-a:
#
# - load time: from starting encore-serve to /readyz answering;
# - RSS after load (VmRSS), and its ratio to the artifact's size on disk;
# - the RSS peak across a reload to scale-b (VmHWM once the reload is done:
#   both models are held at that moment), and its ratio;
# - wrk with bench/load.lua, for-you requests only, then similar-items only
#   (DURATION seconds each, after a warm-up; median of RUNS runs);
# - a mixed load while CURRENT alternates between the versions SWAPS times:
#   every response is checked (status 200, a known model version).
#
# Environment: BIN [CARGO_TARGET_DIR/release, or target/release]: the
# binaries to measure (another build's, to compare); WORK
# [/tmp/encore-serve-scale]; PORT [18201]; SERVER_WORKERS [2]; CONNECTIONS
# [32]; DURATION [15]; SWAPS [6]. The machine's load average is printed with
# the figures: wrk, the server and anything else running share the cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
MODEL="${1:?usage: bench/serve_scale.sh MODEL_DIR [RUNS]}"
RUNS="${2:-3}"
set_defaults BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release" WORK=/tmp/encore-serve-scale PORT=18201 \
    SERVER_WORKERS=2 CONNECTIONS=32 DURATION=15 SWAPS=6
ensure_wrk
STORE="$WORK/store"
mkdir -p "$WORK"
echo "== $(date -u +%FT%TZ), $(nproc) cores, binaries $BIN, model $MODEL"
two_version_store "$MODEL" "$STORE" scale-a scale-b
printf 'scale-a\n' >"$STORE/CURRENT"
write_id_lists "$MODEL" "$WORK"
export ITEMS="$WORK/items.txt" CUSTOMERS="$WORK/customers.txt" VERSIONS="scale-a,scale-b"
ARTIFACT=$(du -sb "$STORE/versions/scale-a" | cut -f1)
mib() { echo $(($1 / 1048576)); }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "== artifact on disk: $(mib "$ARTIFACT") MiB"

BASE="http://127.0.0.1:$PORT"
SERVER=""
cleanup() { [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER/status"; }
succeeded() { curl -sf "$BASE/v1/model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"]["succeeded"])'; }
set_current() { printf '%s\n' "$1" >"$STORE/CURRENT.tmp" && mv "$STORE/CURRENT.tmp" "$STORE/CURRENT"; }

START=$(date +%s.%N)
"$BIN/encore-serve" --store "$STORE" --bind "127.0.0.1:$PORT" --workers "$SERVER_WORKERS" \
    --watch-interval 0.2 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 6000); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/readyz" >/dev/null || { echo "server did not become ready"; tail "$WORK/serve.err"; exit 1; }
LOADED=$(date +%s.%N)
sleep 1
RSS=$(( $(kb VmRSS) * 1024 ))
echo "load time: $(python3 -c "print(f'{$LOADED - $START:.1f}')") s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "RSS after load: $(mib "$RSS") MiB = $(ratio "$RSS" "$ARTIFACT") x the artifact"
set_current scale-b
for _ in $(seq 6000); do [[ "$(succeeded)" == 1 ]] && break; sleep 0.1; done
[[ "$(succeeded)" == 1 ]] || { echo "the reload did not happen"; tail "$WORK/serve.err"; exit 1; }
sleep 1
PEAK=$(( $(kb VmHWM) * 1024 ))
RSS=$(( $(kb VmRSS) * 1024 ))
echo "RSS peak across a reload: $(mib "$PEAK") MiB = $(ratio "$PEAK" "$ARTIFACT") x the artifact; after it: $(mib "$RSS") MiB"

wrk_run() { # SHARE SECONDS: prints "rps p50 p99 bad"
    SIMILAR_SHARE="$1" wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency -s "$ROOT/bench/load.lua" "$BASE" |
        python3 -c '
import re, sys
t = sys.stdin.read()
rps = re.search(r"Requests/sec:\s*([\d.]+)", t).group(1)
p = re.search(r"p50_ms ([\d.]+) p90_ms [\d.]+ p99_ms ([\d.]+)", t)
c = re.search(r"checked (\d+) responses: (\d+) not 200, (\d+) without", t)
s = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
print(rps, p.group(1), p.group(2), int(c.group(2)) + int(c.group(3)) + sum(map(int, s.groups())), c.group(1))'
}
for kind in for-you similar-items; do
    share=0; [[ "$kind" == similar-items ]] && share=1
    wrk_run "$share" 5 >/dev/null
    : >"$WORK/$kind.txt"
    for _ in $(seq "$RUNS"); do wrk_run "$share" "$DURATION" >>"$WORK/$kind.txt"; done
    python3 - "$WORK/$kind.txt" "$kind" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = lambda i: statistics.median(float(r[i]) for r in rows)
bad = sum(int(r[3]) for r in rows)
print(f"{sys.argv[2]}: {med(0):,.0f} requests/s, p50 {med(1):.2f} ms, p99 {med(2):.2f} ms "
      f"(median of {len(rows)} runs; {bad} failed; load average {sys.argv[3]})")
PY
done
echo "== mixed load while CURRENT alternates $SWAPS times"
(
    sleep 1
    for i in $(seq "$SWAPS"); do
        if (( i % 2 )); then set_current scale-a; else set_current scale-b; fi
        sleep "$(python3 -c "print(max(1.0, ($DURATION * 2 - 2) / $SWAPS))")"
    done
) &
SWAPPER=$!
read -r rps p50 p99 bad seen < <(wrk_run 0.5 $((DURATION * 2)))
wait $SWAPPER
echo "swaps: $(curl -s "$BASE/v1/model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"])'); $seen responses, $bad failed; $rps requests/s, p99 $p99 ms"
PEAK=$(( $(kb VmHWM) * 1024 ))
RSS=$(( $(kb VmRSS) * 1024 ))
echo "RSS at the end: $(mib "$RSS") MiB; peak over the run: $(mib "$PEAK") MiB = $(ratio "$PEAK" "$ARTIFACT") x the artifact"
