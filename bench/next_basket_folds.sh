#!/usr/bin/env bash
# Next-basket validation on several earlier folds, never the test baskets:
# for f = 1..FOLDS, each customer's last f orders are dropped and
# `encore-train evaluate --split next-basket` scores the customer's last
# remaining order. Fold 1 scores the baskets that `--score-validation` scores
# (each customer's second-to-last order); every fold is older than the test
# baskets. The mean over folds is a less noisy guide for choosing settings on
# a small sample than one validation basket per customer.
#
#   bench/next_basket_folds.sh INPUT.csv [CONFIG.toml]
#
# INPUT.csv: canonical purchase CSV (order_id,customer_id,item_id,timestamp,
# ...; e.g. the Instacart sample converted by bench/instacart_to_csv.py).
# A customer's orders are ranked by the earliest timestamp of their lines.
# Environment: FOLDS [4] MODELS [ranker,tifu_als,p_topfreq] WORK [/tmp/encore-folds]
# ENCORE_TRAIN [built from this checkout]: the encore-train binary to score,
# e.g. a copy of an earlier build to compare against.
# Prints Recall@10 / NDCG@10 per fold and model, then the means and each
# model's mean against the best of the others.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 INPUT.csv [CONFIG.toml]" >&2
    exit 2
fi
INPUT="$1"
CONFIG="${2:-}"
for f in "$INPUT" ${CONFIG:+"$CONFIG"}; do
    [[ -f "$f" ]] || { echo "$0: no such file: $f" >&2; exit 2; }
done
FOLDS="${FOLDS:-4}"
MODELS="${MODELS:-ranker,tifu_als,p_topfreq}"
WORK="${WORK:-/tmp/encore-folds}"
mkdir -p "$WORK"

if [[ -n "${ENCORE_TRAIN:-}" ]]; then
    BIN="$ENCORE_TRAIN"
    [[ -x "$BIN" ]] || { echo "$0: ENCORE_TRAIN is not an executable: $BIN" >&2; exit 2; }
else
    (cd "$ROOT" && cargo build --release --locked --quiet -p encore-training -p encore-serving --bin encore-train)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/encore-train"
fi

python3 - "$INPUT" "$WORK" "$FOLDS" <<'PY'
import csv, sys
from collections import defaultdict

src, work, folds = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, newline="") as f:
    reader = csv.DictReader(f)
    header, rows = reader.fieldnames, list(reader)
for need in ("order_id", "customer_id", "timestamp"):
    if need not in header:
        sys.exit(f"{src}: no column {need!r} (have {header})")
first = defaultdict(dict)  # customer -> order -> earliest timestamp
for r in rows:
    orders = first[r["customer_id"]]
    t = r["timestamp"]
    if r["order_id"] not in orders or t < orders[r["order_id"]]:
        orders[r["order_id"]] = t
rank = {}  # (customer, order) -> 0 for the newest order
for c, orders in first.items():
    newest_first = sorted(orders, key=lambda o: (orders[o], o), reverse=True)
    for k, o in enumerate(newest_first):
        rank[(c, o)] = k
for fold in range(1, folds + 1):
    with open(f"{work}/fold{fold}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(r for r in rows if rank[(r["customer_id"], r["order_id"])] >= fold)
PY

for fold in $(seq 1 "$FOLDS"); do
    "$BIN" evaluate --input "$WORK/fold$fold.csv" --split next-basket --k 10 \
        --models "$MODELS" ${CONFIG:+--config "$CONFIG"} \
        --report "$WORK/fold$fold.json" >"$WORK/fold$fold.log" 2>&1 ||
        { cat "$WORK/fold$fold.log" >&2; exit 1; }
done

python3 - "$WORK" "$FOLDS" <<'PY'
import json, sys

work, folds = sys.argv[1], int(sys.argv[2])
scores = {}  # model -> [(recall, ndcg)] per fold
for fold in range(1, folds + 1):
    report = json.load(open(f"{work}/fold{fold}.json"))
    print(f"fold {fold}: {report['customers_scored']} customers")
    for m in report["models"]:
        r, n = m["metrics"]["recall@10"], m["metrics"]["ndcg@10"]
        scores.setdefault(m["model"], []).append((r, n))
        print(f"  {m['model']:<12} {r:.4f} / {n:.4f}")
mean = {m: tuple(sum(v[k] for v in s) / len(s) for k in (0, 1)) for m, s in scores.items()}
print(f"mean of {folds} folds, Recall@10 / NDCG@10:")
for m, (r, n) in mean.items():
    others = [v for o, v in mean.items() if o != m]
    vs = ""
    if others:
        br, bn = max(v[0] for v in others), max(v[1] for v in others)
        vs = f"  ({100 * (r / br - 1):+.1f} % / {100 * (n / bn - 1):+.1f} % against the best other)"
    print(f"  {m:<12} {r:.4f} / {n:.4f}{vs}")
PY
