#!/usr/bin/env bash
# Encore's evaluation vs Python peers (implicit 0.7.2 ALS and BM25 item-kNN,
# tuned on the validation split; TopFreq recomputed in Python) on the very same
# train/test files, scored with the same metric definitions.
#
#   bench/compare_peers.sh [online_retail|instacart|all]     # default: all
#
# Environment: VENV [/tmp/encore-bench-venv] WORK [/tmp/encore-peers]
# THREADS [2] INSTACART [../shared/datasets/instacart_sample/instacart_df_sample.csv.gz
# relative to the repository]; ONLINE_RETAIL_CONFIG, INSTACART_CONFIG [none]: a
# training config (e.g. one written by `encore-train tune`) for that dataset;
# BIN [CARGO_TARGET_DIR/release, or target/release, built]: the binaries' directory.
#
# Per dataset: `encore-train evaluate --report WORK/<name>.json --export-split
# WORK/<name>_split` writes Encore's scores and the split it scored (train.csv,
# test.csv, items.csv, meta.json, and the validation split under validation/);
# bench/peers.py trains and scores the peers on those files. One table is
# printed: Recall/NDCG at 10 and 20 for Encore's models and the peers, and
# Encore's "for you" model (ranker, the learned re-ranker) against the best
# peer or baseline, with Encore's 95% paired bootstrap interval over customers
# when that rival is one of Encore's rows (the report's `gains`).
#
# Online Retail: the bundled sample with its column map and catalog, time split
# at 2011-10-01 (validation: the 30 days before it).
# Instacart: next-basket split (each user's last order) on a sample converted by
# bench/instacart_to_csv.py into WORK/instacart.csv. Instacart has no dates:
# timestamps are a fixed base date plus each user's cumulative
# days_since_prior_order plus order_hour_of_day (see that script); quantity 1,
# no price. The Instacart data is not shipped with Encore.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
WHICH="${1:-all}"
set_defaults VENV=/tmp/encore-bench-venv WORK=/tmp/encore-peers THREADS=2 \
    INSTACART="$ROOT/../shared/datasets/instacart_sample/instacart_df_sample.csv.gz"

case "$WHICH" in
online_retail | instacart | all) ;;
*)
    echo "usage: $0 [online_retail|instacart|all]" >&2
    exit 2
    ;;
esac

ensure_implicit_venv "$VENV"

ensure_bin "$ROOT"
TRAIN="$BIN/encore-train"
mkdir -p "$WORK"

run() { # name evaluate-args...
    local name="$1"
    shift
    local split="$WORK/${name}_split"
    rm -rf "$split"
    echo "== $name: encore-train evaluate"
    "$TRAIN" evaluate "$@" --k 10,20 --report "$WORK/$name.json" --export-split "$split" \
        >"$WORK/$name.encore.log" 2>&1 || {
        cat "$WORK/$name.encore.log" >&2
        exit 1
    }
    grep -E '^(split|customers|purchases)' "$WORK/$name.encore.log" | sed 's/^/   /'
    echo "== $name: peers (tuned on $split/validation)"
    OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" -W ignore "$ROOT/bench/peers.py" "$split" \
        --threads "$THREADS" >"$WORK/$name.peers.jsonl" 2>"$WORK/$name.peers.log" || {
        cat "$WORK/$name.peers.log" >&2
        exit 1
    }
    "$VENV/bin/python" - "$name" "$WORK/$name.json" "$WORK/$name.peers.jsonl" <<'EOF'
import json, sys

name, report, peers = sys.argv[1], json.load(open(sys.argv[2])), [
    json.loads(l) for l in open(sys.argv[3]) if l.strip()]
cols = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]
heads = ["Recall@10", "NDCG@10", "Recall@20", "NDCG@20"]
encore_order = ["ranker", "tifu_als", "tifu_knn", "ease", "als", "item_knn", "p_topfreq", "gp_topfreq", "popularity"]
enc = {m["model"]: m["metrics"] for m in report["models"]}
rows = [(f"encore {m}", enc[m]) for m in encore_order if m in enc]
rows += [(p["model"] + (" (tuned)" if p["model"].startswith("implicit") else ""), p) for p in peers]
s = report["split"]
print(f"\n{name}: {s['kind']} split, {s['customers_scored']} customers scored, "
      f"{s['train_purchases']} training lines, {s['mean_relevant']:.2f} relevant items each")
w = max(len(r[0]) for r in rows)
print(f"{'model':<{w}} " + " ".join(f"{h:>9}" for h in heads))
for label, m in rows:
    print(f"{label:<{w}} " + " ".join(f"{m[c]:>9.4f}" for c in cols))
for p in peers:
    if p["params"]:
        print(f"  {p['model']} tuned on validation: {p['params']} "
              f"(validation Recall@10 {p['validation']['recall@10']:.4f})")
for py, own in [("py_p_topfreq", "p_topfreq"), ("py_gp_topfreq", "gp_topfreq")]:
    p = next(p for p in peers if p["model"] == py)
    d = max(abs(p[c] - enc[own][c]) for c in cols)
    print(f"  cross-check {py} vs encore {own}: max |difference| {d:.2e}")
# Best peer or baseline per metric: the implicit models and Encore's non-personalised
# and own-history baselines (the Python TopFreq rows are the same lists).
rivals = {p["model"]: p for p in peers if p["model"].startswith("implicit")}
rivals.update({m: enc[m] for m in ["p_topfreq", "gp_topfreq", "popularity"] if m in enc})
parts = []
for c, h in zip(cols, heads):
    best = max(rivals, key=lambda r: rivals[r][c])
    b, t = rivals[best][c], enc["ranker"][c]
    # Encore's paired bootstrap interval over customers, when the rival is Encore's.
    g = report["models"][[m["model"] for m in report["models"]].index("ranker")].get("gains", {})
    g = g.get(c, {}).get(best)
    ci = f", 95% interval {100 * g['low']:+.1f}% to {100 * g['high']:+.1f}%" if g else ""
    parts.append(f"{h} {t:.4f} vs {best} {b:.4f} ({100 * (t - b) / b:+.1f}%{ci})")
print("ranker vs best peer or baseline: " + "; ".join(parts))
EOF
}

if [[ "$WHICH" == online_retail || "$WHICH" == all ]]; then
    run online_retail \
        --input "$ROOT/data/sample/online_retail.csv.gz" \
        --columns order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice \
        --catalog "$ROOT/data/sample/online_retail_catalog.csv" \
        --holdout-from 2011-10-01 ${ONLINE_RETAIL_CONFIG:+--config "$ONLINE_RETAIL_CONFIG"}
fi

if [[ "$WHICH" == instacart || "$WHICH" == all ]]; then
    if [[ ! -f "$INSTACART" ]]; then
        echo "no Instacart sample at $INSTACART (set INSTACART=...)" >&2
        exit 1
    fi
    python3 "$ROOT/bench/instacart_to_csv.py" "$INSTACART" "$WORK/instacart.csv"
    run instacart --input "$WORK/instacart.csv" --split next-basket \
        ${INSTACART_CONFIG:+--config "$INSTACART_CONFIG"}
fi
