# Shared by the bench scripts (sourced, not run): installing wrk, the 100k
# customers x 20k items model that load.sh and reload_memory.sh serve, the
# sample's model that events_load.sh and events_start.sh serve, and the
# seeded exposure log of events_start.sh and experiment_report.sh.

# Installs wrk from the Debian packages if it is missing.
ensure_wrk() {
    if ! command -v wrk >/dev/null; then
        echo "== installing wrk"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
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
        python3 - "$store/versions/$v/manifest.json" "$v" <<'PY'
import json, sys
path, version = sys.argv[1], sys.argv[2]
m = json.load(open(path))
m["model_version"] = version
json.dump(m, open(path, "w"), indent=2)
PY
    done
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
