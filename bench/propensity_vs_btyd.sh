#!/usr/bin/env bash
# Encore's buying probability (`buy_within_30d_probability`) against counting
# and the BTYD peers (lifetimes 0.11.3 BG/NBD and Pareto/NBD), H = 30 days, on
# Online Retail (cutoff 2011-10-01), CDNOW (calibration to 1997-09-30) and the
# grocery log (cutoff 2007-07-01): every model is fitted on the history before
# the cutoff, in the same run, and ranks the customers who bought before it by
# who buys in the 30 days after it (ROC AUC).
#
#   bench/propensity_vs_btyd.sh [--validation]
#
# --validation moves every cutoff 60 days back (the label window then ends 30
# days before the real cutoff): the figures settings were chosen on.
# Environment: VENV [/tmp/encore-btyd-venv] WORK [/tmp/encore-propensity].
# The datasets are read from ../shared/datasets beside the checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-/tmp/encore-btyd-venv}"
WORK="${WORK:-/tmp/encore-propensity}"
SHIFT=0
if [ "${1:-}" = "--validation" ]; then SHIFT=60; fi

if ! "$VENV/bin/python" -c 'import lifetimes, pandas, numpy' 2>/dev/null; then
    echo "== creating $VENV (lifetimes 0.11.3)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet lifetimes==0.11.3 'pandas<3' numpy scipy
fi

echo "== Encore (cutoffs shifted back $SHIFT days)"
(cd "$ROOT" && cargo run --release --locked --quiet -p encore-model --example propensity_eval -- \
    --shift-days "$SHIFT" --out "$WORK")
echo "== against the peers fitted on the same training summaries"
"$VENV/bin/python" "$ROOT/bench/propensity_peers.py" "$WORK" 30
