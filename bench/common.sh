# Shared by the bench scripts (sourced, not run): their settings' defaults,
# installing wrk, GNU time and the peers' Python environment, building the
# binaries, the 100k customers x 20k items model that load.sh and
# reload_memory.sh serve, the sample's model that events_load.sh and
# events_start.sh serve, the id lists bench/load.lua requests, and the seeded
# exposure log of events_start.sh and experiment_report.sh.

# set_defaults NAME=VALUE...: sets each NAME that is unset or empty to VALUE,
# so that a value from the environment wins (the Environment lines at the top
# of each script list them). Not exported: a script exports what its children
# read.
set_defaults() {
    local setting name
    for setting in "$@"; do
        name="${setting%%=*}"
        if [[ -z "${!name:-}" ]]; then
            printf -v "$name" '%s' "${setting#*=}"
        fi
    done
}

# Installs wrk from the Debian packages if it is missing.
ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        echo "== installing wrk"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
}

# Installs GNU time (for peak RSS) from the Debian packages if it is missing.
ensure_gnu_time() {
    if [[ ! -x /usr/bin/time ]]; then
        echo "== installing GNU time (for peak RSS)"
        if ! apt-get install -y time >/dev/null 2>&1; then
            apt-get update >/dev/null && apt-get install -y time >/dev/null
        fi
    fi
}

# ensure_implicit_venv VENV: a Python environment at VENV with implicit 0.7.2,
# numpy, scipy and threadpoolctl (the peers' ALS); reused when it has them.
ensure_implicit_venv() {
    local venv="$1"
    if ! "$venv/bin/python" -c 'import implicit, numpy, scipy, threadpoolctl' 2>/dev/null; then
        echo "== creating $venv (implicit 0.7.2)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet implicit==0.7.2 numpy scipy threadpoolctl
    fi
}

# ensure_bin ROOT: sets BIN to the release binaries of encore-train and
# encore-serve, built from ROOT, unless BIN is set already.
ensure_bin() {
    if [[ -z "${BIN:-}" ]]; then
        echo "== building (release)"
        (cd "$1" && cargo build --release --locked -q -p encore-training -p encore-serving --bins)
        BIN="${CARGO_TARGET_DIR:-$1/target}/release"
    fi
}

# load_settings CONNECTIONS: what run_load needs besides ROOT, PORT and
# DURATION: CONNECTIONS (default as given), WRK_THREADS [1], SIMILAR_SHARE
# [0.5] (exported: bench/load.lua reads it) and wrk.
load_settings() {
    set_defaults CONNECTIONS="$1" WRK_THREADS=1 SIMILAR_SHARE=0.5
    export SIMILAR_SHARE
    ensure_wrk
}

# run_load [SECONDS]: wrk with bench/load.lua against the server on PORT for
# SECONDS (default DURATION), WRK_THREADS threads and CONNECTIONS
# connections; prints the throughput, latency, error and check lines.
run_load() {
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${1:-$DURATION}s" --latency -s "$ROOT/bench/load.lua" \
        "http://127.0.0.1:$PORT" | grep -E "Requests/sec|checked|socket errors|p50_ms|Non-2xx"
}

# ensure_load_model BIN WORK: a seeded synthetic history (100k customers x
# 20k items x 5M purchases, the `synth` example) trained once with
# `encore-train fit --no-eval` into WORK/model; reused when present.
ensure_load_model() {
    local bin="$1" work="$2"
    mkdir -p "$work"
    if [[ ! -f "$work/model/manifest.json" ]]; then
        echo "== generating 100k x 20k x 5M and training (about 4 minutes on 2 cores)"
        "$bin/examples/synth" "$work/history.csv"
        "$bin/encore-train" fit --input "$work/history.csv" --out "$work/model" --no-eval \
            --rejects "$work/rejects.csv" >/dev/null
    fi
}

# two_version_store MODEL STORE V1 V2: a fresh store holding MODEL twice, as
# versions V1 and V2 (the manifest's model version renamed to match, so every
# answer can be attributed to one version).
two_version_store() {
    local model="$1" store="$2"
    shift 2
    rm -rf "$store"
    mkdir -p "$store/versions"
    local v
    for v in "$@"; do
        cp -r "$model" "$store/versions/$v"
        rename_version "$store/versions/$v" "$v"
    done
}

# rename_version DIR VERSION: sets the model version in DIR's manifest to VERSION.
rename_version() {
    python3 - "$1/manifest.json" "$2" <<'PY'
import json, sys
path, version = sys.argv[1], sys.argv[2]
m = json.load(open(path))
m["model_version"] = version
json.dump(m, open(path, "w"), indent=2)
PY
}

# write_id_lists MODEL OUT: OUT/customers.txt and OUT/items.txt, the ids of
# MODEL's customers and items (URL-encoded, one a line), for bench/load.lua.
write_id_lists() {
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.parse
model, out = sys.argv[1], sys.argv[2]
q = lambda s: urllib.parse.quote(s, safe="")
customers = json.load(open(f"{model}/customers.json"))
items = [r["id"] for r in json.load(open(f"{model}/items.json"))]
open(f"{out}/customers.txt", "w").write("\n".join(q(c) for c in customers) + "\n")
open(f"{out}/items.txt", "w").write("\n".join(q(i) for i in items) + "\n")
PY
}

# ensure_sample_model BIN ROOT WORK: the bundled Online Retail sample trained
# once with `encore-train fit --no-eval` into WORK/model; reused when present.
ensure_sample_model() {
    local bin="$1" root="$2" work="$3"
    mkdir -p "$work"
    if [[ ! -f "$work/model/manifest.json" ]]; then
        echo "== training on the bundled sample"
        "$bin/encore-train" fit --input "$root/data/sample/online_retail.csv.gz" \
            --columns order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice \
            --out "$work/model" --no-eval --rejects "$work/rejects.csv" >/dev/null
    fi
}

# write_exposures FILE N: N seeded exposure events of experiment "home-list"
# (customers 12346.. of 4,000, each always in the same of two variants, 10
# items an exposure, one a second from 2025-11-30T10:53:20Z), one JSON line each.
write_exposures() {
    python3 - "$1" "$2" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
with open(path, "w") as f:
    for i in range(n):
        t = 1_764_500_000 + i
        e = {"id": f"exp-{i}", "type": "exposure", "time": t,
             "customer": str(12346 + i % 4000), "list": "for_you",
             "items": [str(20000 + rng.randrange(3000)) for _ in range(10)],
             "experiment": "home-list", "variant": ("control", "treatment")[i % 2],
             "request_id": f"r-{i}", "received_at": t}
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
}
