#!/usr/bin/env bash
# Trains Encore on the bundled UCI Online Retail sample and starts the server.
# Usage: scripts/quickstart.sh [BIND]   (default 127.0.0.1:8080)
set -euo pipefail
cd "$(dirname "$0")/.."
bind="${1:-127.0.0.1:8080}"

cargo build --release --locked -p encore-training -p encore-serving
bin="${CARGO_TARGET_DIR:-target}/release"

"$bin/encore-train" fit \
  --input data/sample/online_retail.csv.gz \
  --columns order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice \
  --catalog data/sample/online_retail_catalog.csv \
  --rejects artifacts/online_retail.rejects.csv \
  --out artifacts/online_retail

exec "$bin/encore-serve" --model artifacts/online_retail --bind "$bind"
