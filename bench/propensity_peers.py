"""BTYD peers for the buying-probability evaluation (bench/propensity_vs_btyd.sh).

Reads DIR/<history>.csv as written by the `propensity_eval` example (one row
per customer with a purchase before the cutoff: label = bought in the 30 days
after it, Encore's probability, days since the last purchase, orders, and the
BTYD summary x, t_x, T in days at the cutoff), fits the Python lifetimes
package's BG/NBD and Pareto/NBD on that same training summary (in weeks), and
prints ROC AUC of every ranking with Encore's margin over the best one.

    python bench/propensity_peers.py DIR [HORIZON_DAYS]
"""

import sys
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter

HISTORIES = ["online_retail", "cdnow", "grocery"]


def roc_auc(scores, labels):
    """Mann-Whitney AUC with ties counting one half."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i + 1
        while j < len(s) and s[j] == s[i]:
            j += 1
        ranks[i:j] = (i + j + 1) / 2.0
        i = j
    r = np.empty(len(s))
    r[order] = ranks
    p = labels.sum()
    n = len(labels) - p
    return (r[labels].sum() - p * (p + 1) / 2.0) / (p * n)


def fit_predict(fitter_cls, freq, rec, age, horizon_weeks):
    """Fits with no penalty; on failure retries with small penalties."""
    for penalizer in (0.0, 0.001, 0.01):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = fitter_cls(penalizer_coef=penalizer)
                m.fit(freq, rec, age)
                e = m.conditional_expected_number_of_purchases_up_to_time(
                    horizon_weeks, freq, rec, age
                )
            e = np.asarray(e, dtype=float)
            if np.all(np.isfinite(e)):
                return e, penalizer
        except Exception as exc:  # noqa: BLE001 - report and retry
            print(f"    {fitter_cls.__name__} penalizer {penalizer}: {exc}", file=sys.stderr)
    return None, None


def main():
    folder = sys.argv[1]
    horizon_weeks = (float(sys.argv[2]) if len(sys.argv) > 2 else 30.0) / 7.0
    print(
        f"{'history':<14} {'customers':>9} {'buyers':>6}  {'encore':>6}  {'days_since_last':>15}"
        f"  {'orders':>6}  {'bg_nbd':>6}  {'pareto_nbd':>10}  {'best_baseline':>13}  {'margin':>7}  target"
    )
    for name in HISTORIES:
        try:
            d = pd.read_csv(f"{folder}/{name}.csv", dtype={"customer": str})
        except FileNotFoundError:
            continue
        y = d["label"].to_numpy() == 1
        freq = d["x"].to_numpy(dtype=float)
        rec = d["t_x"].to_numpy(dtype=float) / 7.0
        age = d["T_days"].to_numpy(dtype=float) / 7.0
        auc = {
            "encore": roc_auc(d["encore"], y),
            "days_since_last": roc_auc(-d["days_since_last"], y),
            "orders": roc_auc(d["orders"], y),
        }
        notes = []
        for key, cls in (("bg_nbd", BetaGeoFitter), ("pareto_nbd", ParetoNBDFitter)):
            e, pen = fit_predict(cls, freq, rec, age, horizon_weeks)
            auc[key] = roc_auc(e, y) if e is not None else float("nan")
            if pen:
                notes.append(f"{key} penalizer {pen}")
        baselines = {k: v for k, v in auc.items() if k != "encore" and np.isfinite(v)}
        best = max(baselines, key=baselines.get)
        margin = auc["encore"] - baselines[best]
        print(
            f"{name:<14} {len(d):>9} {int(y.sum()):>6}  {auc['encore']:.4f}  {auc['days_since_last']:>15.4f}"
            f"  {auc['orders']:.4f}  {auc['bg_nbd']:.4f}  {auc['pareto_nbd']:>10.4f}  {best:>13}"
            f"  {margin:+.4f}  {'met' if margin >= 0.02 else 'NOT met'}"
            + (f"  ({'; '.join(notes)})" if notes else "")
        )


if __name__ == "__main__":
    main()
