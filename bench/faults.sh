#!/usr/bin/env bash
# Fault checks of the model store and the server, on the bundled sample:
#   a. damaged versions made current (truncated array file, one bit flipped in
#      an array file, in a checksum of the manifest and in its model_version,
#      a wrong format version) are refused by `models promote` and, written
#      into CURRENT directly, by the running server, which keeps serving the
#      old version, reports the refusal naming the file, then takes a good one;
#   b. the server killed with SIGKILL under traffic, and in the middle of a
#      reload, restarts on the same store and port and serves the same version;
#   c. `encore-train fit --store` killed at several points leaves CURRENT,
#      `models list` and the server as they were; its staging directory is
#      removed by a later publish once stale; a complete fit then publishes.
# Prints one PASS or FAIL line per check; exits 1 if any failed.
#
#   bench/faults.sh
#
# Environment: WORK [/tmp/encore-faults] PORT [18291] NO_BUILD [0]: 1 uses
# the binaries already in CARGO_TARGET_DIR (or target/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
set_defaults WORK=/tmp/encore-faults PORT=18291
BASE="http://127.0.0.1:$PORT"

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== building (release)"
    (cd "$ROOT" && cargo build --release --locked -q -p encore-training -p encore-serving --bins)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "FAIL setup: $tool is needed"; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK"
STORE="$WORK/store"
COLUMNS=order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice
FIT_ARGS=(fit --input "$ROOT/data/sample/online_retail.csv.gz" --columns "$COLUMNS"
    --catalog "$ROOT/data/sample/online_retail_catalog.csv" --rejects "$WORK/rejects.csv"
    --store "$STORE" --no-eval)

FAILED=0
check() { # check NAME COMMAND...: PASS if COMMAND succeeds
    local name=$1; shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; FAILED=$((FAILED + 1)); fi
}
SERVER=""
LOADER=""
FIT=""
cleanup() {
    for p in $LOADER $FIT $SERVER; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_server() {
    "$BIN/encore-serve" --store "$STORE" --bind "127.0.0.1:$PORT" --workers 2 \
        --watch-interval 0.1 >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
    SERVER=$!
}
wait_ready() { # seconds until /readyz answers, or failure after 30 s
    local start
    start=$(date +%s%N)
    for _ in $(seq 300); do
        if curl -sf "$BASE/readyz" >/dev/null 2>&1; then
            echo "$(( ($(date +%s%N) - start) / 1000000 )) ms"; return 0
        fi
        sleep 0.1
    done
    return 1
}
model_field() { # model_field PYTHON_EXPR: evaluated on /v1/model's JSON as `m`
    curl -sf "$BASE/v1/model" | python3 -c "import json,sys; m=json.load(sys.stdin); print($1)"
}
current() { cut -d' ' -f1 "$STORE/CURRENT"; } # the name, without the manifest's digest
write_current() { printf '%s\n' "$1" >"$STORE/CURRENT"; } # by hand, no check
# One recommendation request; prints "STATUS VERSION".
ask() {
    curl -s -o /dev/null -D - "$BASE/v1/items/$ITEM/similar?k=5" |
        awk 'NR == 1 {s = $2} tolower($1) == "x-encore-model-version:" {v = $2} END {gsub(/\r/, "", v); print s, v}'
}
serves() { [[ "$(ask)" == "200 $1" ]]; }
wait_serving() { # wait_serving VERSION: up to 10 s
    for _ in $(seq 100); do serves "$1" && return 0; sleep 0.1; done
    return 1
}
wait_failures() { # wait_failures N: until /v1/model counts N refused reloads (10 s)
    for _ in $(seq 100); do [[ "$(model_field 'm["reloads"]["failed"]')" == "$1" ]] && return 0; sleep 0.1; done
    return 1
}
metrics_failures() { curl -sf "$BASE/metrics" | awk '/^encore_model_reloads_total\{result="failure"\}/ {print $2}'; }
last_error_names() { model_field 'm["reloads"]["last_error"]["error"]' | grep -qF -- "$1"; }
copy_version() { # copy_version FROM NAME: a whole copy named NAME (manifest renamed too)
    cp -r "$STORE/versions/$1" "$STORE/versions/$2"
    rename_version "$STORE/versions/$2" "$2"
}
flip_bit() { # flip_bit FILE OFFSET BIT
    python3 - "$@" <<'PY'
import sys
path, offset, bit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = bytearray(open(path, "rb").read())
b[offset] ^= 1 << bit
open(path, "wb").write(b)
PY
}
# Offset in a manifest of the last digit of FILE's crc32, or of the last
# character of the model_version value (FILE = model_version).
manifest_offset() {
    python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1], "rb").read().decode()
if sys.argv[2] == "model_version":
    m = re.search(r'"model_version": "([^"]*)"', text)
    print(m.end(1) - 1)
else:
    start = text.index('"%s"' % sys.argv[2])
    m = re.compile(r'"crc32": (\d+)').search(text, start)
    print(m.end(1) - 1)
PY
}
staging_count() { find "$STORE/versions" -mindepth 1 -maxdepth 1 -name '.*.tmp-*' | wc -l; }

echo "== training the first version on the sample (about 10 s)"
"$BIN/encore-train" "${FIT_ARGS[@]}" >"$WORK/fit0.out"
V0=$(current)
ITEM=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(open(sys.argv[1]))[0]["id"], safe=""))' \
    "$STORE/versions/$V0/items.json")
start_server
wait_ready >/dev/null || { echo "FAIL setup: the server did not start"; tail "$WORK/serve.err"; exit 1; }
check "setup: serving $V0" serves "$V0"

echo "== a. damaged versions made current"
OLD=$V0
FAILURES=0
n=0
# name | damage | what the error must name
for kind in truncated array-bit manifest-crc-bit manifest-name-bit wrong-format; do
    n=$((n + 1))
    BAD="bad-$kind"
    copy_version "$OLD" "$BAD"
    dir="$STORE/versions/$BAD"
    case $kind in
        truncated)
            size=$(stat -c %s "$dir/als_items.f32")
            truncate -s $((size / 2)) "$dir/als_items.f32"
            names=als_items.f32 ;;
        array-bit)
            size=$(stat -c %s "$dir/history.csr")
            flip_bit "$dir/history.csr" $((size / 2)) 3
            names=history.csr ;;
        manifest-crc-bit)
            flip_bit "$dir/manifest.json" "$(manifest_offset "$dir/manifest.json" copurchase.csr)" 0
            names=copurchase.csr ;;
        manifest-name-bit)
            flip_bit "$dir/manifest.json" "$(manifest_offset "$dir/manifest.json" model_version)" 0
            names=manifest.json ;;
        wrong-format)
            python3 - "$dir/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["format_version"] += 1
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY
            names="$BAD" ;;
    esac
    # Through the CLI: promote loads and checks the version first.
    if "$BIN/encore-train" models --store "$STORE" promote "$BAD" >"$WORK/promote.out" 2>&1; then
        check "a.$n $kind: models promote refuses it" false
    else
        check "a.$n $kind: models promote refuses it, naming $names, CURRENT unchanged" \
            bash -c "grep -qF -- '$names' '$WORK/promote.out' && [[ \$(cut -d' ' -f1 '$STORE/CURRENT') == '$OLD' ]]"
    fi
    # By hand (or a bad copy): the server must refuse it.
    write_current "$BAD"
    FAILURES=$((FAILURES + 1))
    check "a.$n $kind: the server counts a refused reload" wait_failures "$FAILURES"
    check "a.$n $kind: still answers 200 from $OLD" serves "$OLD"
    check "a.$n $kind: /v1/model's last error names $names" last_error_names "$names"
    check "a.$n $kind: /metrics counts $FAILURES reload failures" \
        test "$(metrics_failures)" == "$FAILURES"
    sleep 0.5 # the watcher does not retry the refused version
    check "a.$n $kind: not retried while CURRENT stays" wait_failures "$FAILURES"
    GOOD="good-$n"
    copy_version "$OLD" "$GOOD"
    write_current "$GOOD"
    check "a.$n $kind: a later good version is taken ($GOOD)" wait_serving "$GOOD"
    OLD=$GOOD
done
check "a. $FAILURES refused reloads in all, the last error cleared by the good one" \
    bash -c "[[ \$(curl -sf '$BASE/v1/model' | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"reloads\"]; print(r[\"failed\"], r[\"last_error\"])') == '$FAILURES None' ]]"

echo "== b. the server killed with SIGKILL"
if command -v wrk >/dev/null; then
    wrk -t1 -c8 -d5s "$BASE/v1/items/$ITEM/similar?k=5" >"$WORK/wrk.out" 2>&1 &
else
    (for _ in $(seq 2000); do curl -s -o /dev/null "$BASE/v1/items/$ITEM/similar?k=5"; done) &
fi
LOADER=$!
sleep 2
kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
wait "$LOADER" 2>/dev/null || true; LOADER=""
start_server
if secs=$(wait_ready); then
    check "b.1 restarted after kill -9 under traffic (ready in ${secs}, same port)" true
else
    check "b.1 restarted after kill -9 under traffic" false
fi
check "b.1 serves the same version ($OLD), 200" serves "$OLD"
check "b.1 the store is as it was (CURRENT $OLD, models list works)" \
    bash -c "[[ \$(cut -d' ' -f1 '$STORE/CURRENT') == '$OLD' ]] && '$BIN/encore-train' models --store '$STORE' list >/dev/null"

# Killed while it reloads: CURRENT moves and the server is killed as soon as
# it has a file of the new version open.
caught=""
for try in 1 2 3 4 5; do
    NEW="reload-$try"
    copy_version "$OLD" "$NEW"
    write_current "$NEW"
    for _ in $(seq 2000); do
        if find "/proc/$SERVER/fd" -lname "*versions/$NEW/*" 2>/dev/null | grep -q .; then
            kill -9 "$SERVER"; caught=$try; break
        fi
        serves "$NEW" 2>/dev/null && break
    done
    [[ -n "$caught" ]] && break
    OLD=$NEW # reloaded before it was caught; try again
done
if [[ -n "$caught" ]]; then
    wait "$SERVER" 2>/dev/null || true
    start_server
    secs=$(wait_ready) || secs=never
    check "b.2 killed mid-reload (try $caught), restarted (ready in ${secs}) on CURRENT $NEW" serves "$NEW"
    OLD=$NEW
else
    check "b.2 killed mid-reload: the reload was never caught in progress in 5 tries" false
fi

echo "== c. encore-train fit killed midway"
LEFT=0
for point in 1s 3s writing writing-late; do
    before=$(current)
    started=$(date +%s.%N)
    "$BIN/encore-train" "${FIT_ARGS[@]}" >"$WORK/fit-killed.out" 2>&1 &
    FIT=$!
    case $point in
        writing) # as soon as its staging directory appears, plus a little
            for _ in $(seq 3000); do
                [[ $(staging_count) -gt $LEFT ]] && break
                sleep 0.01
            done
            sleep 0.05 ;;
        writing-late) # once the customer profiles (about half-way through the files) are there
            for _ in $(seq 3000); do
                [[ $(find "$STORE/versions" -mindepth 2 -maxdepth 2 -path '*/.*.tmp-*/customer_profiles.bin' | wc -l) -gt $LEFT ]] && break
                sleep 0.01
            done ;;
        *) sleep "${point%s}" ;;
    esac
    if kill -9 "$FIT" 2>/dev/null; then
        echo "   fit killed after $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$started" "$(date +%s.%N)") s"
    else
        echo "   the fit ended before it could be killed"
    fi
    wait "$FIT" 2>/dev/null || true
    FIT=""
    check "c. fit killed at $point: CURRENT unchanged ($before)" test "$(current)" == "$before"
    check "c. fit killed at $point: models list works" \
        bash -c "'$BIN/encore-train' models --store '$STORE' list >'$WORK/list.out' && ! grep -q 'tmp-' '$WORK/list.out'"
    check "c. fit killed at $point: the server still serves $before" serves "$before"
    LEFT=$(staging_count)
    echo "   staging directories left in versions/: $LEFT"
done
# Leftovers are removed by a publish once untouched for 10 minutes (a live
# writer's are kept): age them as if the run was killed last night.
find "$STORE/versions" -mindepth 1 -maxdepth 1 -name '.*.tmp-*' -exec touch -d '-20 minutes' {} +
versions_before=$(ls "$STORE/versions" | wc -l)
set +e
"$BIN/encore-train" "${FIT_ARGS[@]}" >"$WORK/fit-complete.out" 2>&1
rc=$?
set -e
# Exit 3: the promotion gate refused it (the same data has nothing newer to
# compare on): published but not current.
check "c. a complete fit afterwards publishes (exit $rc)" \
    bash -c "[[ $rc == 0 || $rc == 3 ]] && [[ \$(ls '$STORE/versions' | wc -l) -gt $versions_before ]]"
NEWEST=$(ls "$STORE/versions" | grep -v '^good-\|^bad-\|^reload-' | sort | tail -1)
check "c. the stale staging directories ($LEFT) were swept by that publish" test "$(staging_count)" == 0
check "c. the new version $NEWEST is promoted and served" \
    bash -c "'$BIN/encore-train' models --store '$STORE' promote '$NEWEST' >/dev/null"
wait_serving "$NEWEST" || true
check "c. serving $NEWEST" serves "$NEWEST"

if (( FAILED )); then
    echo "== $FAILED check(s) FAILED (logs in $WORK)"
    exit 1
fi
echo "== all checks passed"
