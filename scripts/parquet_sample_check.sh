#!/usr/bin/env bash
# Fits the bundled Online Retail sample from its CSV and from the same rows
# converted to Parquet (the csv_to_parquet example; a single file, and a
# directory of 4 part files), and checks that every model file is byte for
# byte the same, and the manifests the same apart from the data source and
# fingerprint (and the model version and creation time, which any two fits
# have of their own, and timings).
#
#   scripts/parquet_sample_check.sh            # builds release binaries
#   PROFILE=debug scripts/parquet_sample_check.sh
#
# Environment: PROFILE [release] WORK [a new temporary directory]
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-release}"
WORK="${WORK:-$(mktemp -d /tmp/encore-parquet-sample.XXXXXX)}"
TARGET="${CARGO_TARGET_DIR:-target}"
COLUMNS=order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice

flag=()
[[ "$PROFILE" == release ]] && flag=(--release)
cargo build "${flag[@]}" --quiet -p encore-training --bin encore-train
cargo build "${flag[@]}" --quiet -p encore-data --example csv_to_parquet
BIN="$TARGET/$PROFILE"

"$BIN/examples/csv_to_parquet" data/sample/online_retail.csv.gz "$WORK/sample.parquet" --columns "$COLUMNS"
"$BIN/examples/csv_to_parquet" data/sample/online_retail.csv.gz "$WORK/parts" --columns "$COLUMNS" \
    --parts 4 --compression zstd --row-group 50000

fit() { # input out
    "$BIN/encore-train" fit --input "$1" --columns "$COLUMNS" --catalog data/sample/online_retail_catalog.csv \
        --rejects "$2.rejects.csv" --out "$2" >"$2.out"
    grep -E '^read |rows|customers, .* items' "$2.out" | head -3
}
echo "== fitting from CSV";              fit data/sample/online_retail.csv.gz "$WORK/csv"
echo "== fitting from one Parquet file"; fit "$WORK/sample.parquet" "$WORK/pq"
echo "== fitting from 4 part files";     fit "$WORK/parts" "$WORK/parts-model"

python3 - "$WORK/csv" "$WORK/pq" "$WORK/parts-model" <<'EOF'
import json, os, sys

def files(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out

def diff(path, a, b, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            if k not in a or k not in b:
                out.append(f"{path}.{k}")
            else:
                diff(f"{path}.{k}", a[k], b[k], out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append(path)

allowed = {"source", "fingerprint", "data_fingerprint", "model_version", "created_at"}
base = files(sys.argv[1])
ok = True
for other in sys.argv[2:]:
    f = files(other)
    if sorted(f) != sorted(base):
        print(f"{other}: different files: {sorted(set(f) ^ set(base))}")
        ok = False
        continue
    differ = [n for n in base if n != "manifest.json" and base[n] != f[n]]
    paths = []
    diff("", json.loads(base["manifest.json"]), json.loads(f["manifest.json"]), paths)
    unexpected = [p for p in paths
                  if p.rsplit(".", 1)[-1] not in allowed and not p.endswith("seconds")]
    if differ or unexpected:
        print(f"{other}: files differ: {differ}; manifest differs at {unexpected}")
        ok = False
    else:
        print(f"{other}: {len(base) - 1} model files identical; manifest differs only at "
              f"{sorted(set(p for p in paths if not p.endswith('seconds')))} and timings")
sys.exit(0 if ok else 1)
EOF
echo "work: $WORK"
