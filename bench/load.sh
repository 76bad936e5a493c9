#!/usr/bin/env bash
# Load test of encore-serve on loopback with wrk (Debian package), on a model
# of 100k customers x 20k items: a mix of similar-items and for-you requests,
# then the same load while the store's CURRENT is swapped 10 times.
#
#   bench/load.sh [DURATION_SECS]      # default 20 s per run
#
# Environment: WORK [/tmp/encore-load] CONNECTIONS [32] WRK_THREADS [1]
# SERVER_WORKERS [2] SIMILAR_SHARE [0.5] PORT [18181]
# WITHOUT_NEW_ITEM_LISTS [0]: 1 serves the model without its precomputed
# new-item lists (as an artifact from before them), so that every for-you
# request scores the catalog: the reference for what the lists save. (A
# WORK/model trained by a build from before the lists has none either:
# delete it to train one with them.)
#
# The model: a seeded synthetic history (100k customers x 20k items x 5M
# purchases, `synth` example) trained once with `encore-train fit --no-eval`
# into WORK/model (reused when present). The store holds it twice, as
# versions load-a and load-b (the same artifact, the manifest's model version
# renamed), so that every response can be attributed to one version; the
# swap run alternates CURRENT between them with `encore-train models promote`
# while the server's watcher swaps them in. bench/load.lua checks every
# response: status 200 and a model version header naming load-a or load-b.
# wrk, the server and the trainer share the machine's cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
DURATION="${1:-20}"
set_defaults WORK=/tmp/encore-load SERVER_WORKERS=2 PORT=18181
load_settings 32
echo "== building (release)"
(cd "$ROOT" && cargo build --release --locked -q -p encore-training -p encore-serving -p encore-data --bins --example synth)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ensure_load_model "$BIN" "$WORK"
STORE="$WORK/store"
two_version_store "$WORK/model" "$STORE" load-a load-b
if [[ "${WITHOUT_NEW_ITEM_LISTS:-0}" == 1 ]]; then
    for v in load-a load-b; do
        rm -f "$STORE/versions/$v/new_items.csr"
        python3 - "$STORE/versions/$v/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["files"].pop("new_items.csr", None)
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY
    done
    echo "== serving without the precomputed new-item lists"
fi
"$BIN/encore-train" models --store "$STORE" promote load-a >/dev/null
write_id_lists "$WORK/model" "$WORK"
export ITEMS="$WORK/items.txt" CUSTOMERS="$WORK/customers.txt" VERSIONS="load-a,load-b"

"$BIN/encore-serve" --store "$STORE" --bind "127.0.0.1:$PORT" --workers "$SERVER_WORKERS" \
    --watch-interval 0.2 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
ARRAYS=$(du -sb "$STORE/versions/load-a" | cut -f1)
echo "== server RSS after load: $((RSS_KB / 1024)) MiB; artifact on disk: $((ARRAYS / 1048576)) MiB"

echo "== warm-up (5 s)"
run_load 5 >/dev/null
echo "== steady load: ${DURATION}s, $CONNECTIONS connections, $SIMILAR_SHARE similar-items share"
run_load
echo "== the same load with 10 swaps of CURRENT"
(
    sleep 1
    for i in $(seq 10); do
        if (( i % 2 )); then v=load-b; else v=load-a; fi
        "$BIN/encore-train" models --store "$STORE" promote "$v" >/dev/null
        sleep "$(python3 -c "print(max(0.5, ($DURATION - 2) / 10))")"
    done
) &
SWAPPER=$!
run_load
wait $SWAPPER
echo "reloads: $(curl -s "http://127.0.0.1:$PORT/v1/model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"])')"
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
echo "== server RSS at the end: $((RSS_KB / 1024)) MiB"
