#!/usr/bin/env python3
"""Score Python peers on a split exported by `encore-train evaluate --export-split DIR`.

    OPENBLAS_NUM_THREADS=1 python bench/peers.py DIR [--threads 2]

Reads DIR/train.csv, DIR/test.csv, DIR/items.csv and DIR/meta.json (the test
split) and the same files under DIR/validation (the validation split, which
ends where the test targets begin). Prints one JSON line per model with
Recall@K and NDCG@K on the test split for every K of meta.json.

Models:
- implicit_als: `implicit` 0.7.2 ALS (conjugate gradient), tuned on the
  validation split over factors {32,64,128} x regularization {0.01,0.1,1} x
  alpha {1,10,40}, then refit on the test split's training part. The input
  matrix is Encore's ALS input: net quantity per (customer, item), returns
  netted, non-positive pairs dropped, log1p-scaled (r). implicit uses the
  value as the confidence, so it is given c = 1 + alpha * r (the Hu et al.
  form Encore uses) with implicit's own alpha left at 1.
- implicit_bm25: `implicit.nearest_neighbours.BM25Recommender` on the same r,
  K {20,50,100,200,400} x B {0.25,0.5,0.75,1.0} tuned on validation.
- py_p_topfreq / py_gp_topfreq: Encore's P-TopFreq and GP-TopFreq
  recomputed here (own items by number of training orders, ties by net
  quantity then by Encore's item index; GP pads with popularity = distinct
  buyers over the training part's last `popularity_window_days`, counting
  positive lines of pairs that stayed net positive). They cross-check the
  protocol: they should match Encore's p_topfreq / gp_topfreq to ~1e-4.

Tuning picks the highest Recall@10 (first K of meta.json) on validation; the
test targets are never used to choose anything.

Lists follow Encore's evaluator: previously bought items may be recommended
(`filter_already_liked_items=False`), unavailable items (items.csv available=0)
are never recommended, a repeated item counts once, lists are cut at max K.
Metrics follow model/src/metrics.rs: Recall@K = hits / |relevant|, NDCG@K with
binary relevance, a log2 discount and the ideal DCG over min(|relevant|, K),
both averaged over the scored customers (the customers of test.csv).
"""

import argparse
import csv
import itertools
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp


class Split:
    """One exported split, indexed like Encore (items by items.csv order)."""

    def __init__(self, d):
        with open(os.path.join(d, "meta.json")) as f:
            self.meta = json.load(f)
        self.ks = self.meta["ks"]
        item_ids, available = [], []
        with open(os.path.join(d, "items.csv"), newline="") as f:
            for row in csv.DictReader(f):
                item_ids.append(row["item_id"])
                available.append(row["available"] == "1")
        self.item_index = {s: i for i, s in enumerate(item_ids)}
        self.n_items = len(item_ids)
        self.available = np.array(available, dtype=bool)
        self.unavailable = np.flatnonzero(~self.available).astype(np.int32)
        self.customer_index = {}
        cust, item, order, qty, times = [], [], [], [], []
        orders = {}
        with open(os.path.join(d, "train.csv"), newline="") as f:
            for row in csv.DictReader(f):
                c = self.customer_index.setdefault(row["customer_id"], len(self.customer_index))
                cust.append(c)
                item.append(self.item_index[row["item_id"]])
                order.append(orders.setdefault(row["order_id"], len(orders)))
                qty.append(float(row["quantity"]))
                times.append(row["timestamp"])
        self.cust = np.array(cust, dtype=np.int64)
        self.item = np.array(item, dtype=np.int64)
        self.order = np.array(order, dtype=np.int64)
        self.qty = np.array(qty, dtype=np.float64)
        # RFC 3339 UTC strings of one width sort like times; numpy parses them.
        self.time = np.array([t.rstrip("Z") for t in times], dtype="datetime64[s]").astype(np.int64)
        self.targets = []  # (customer index, set of item indices), test.csv order
        by_customer = {}
        with open(os.path.join(d, "test.csv"), newline="") as f:
            for row in csv.DictReader(f):
                c = self.customer_index.setdefault(row["customer_id"], len(self.customer_index))
                if c not in by_customer:
                    by_customer[c] = set()
                    self.targets.append((c, by_customer[c]))
                by_customer[c].add(self.item_index[row["item_id"]])
        assert len(self.targets) == self.meta["customers_scored"], "test.csv vs meta.json"
        self.n_customers = len(self.customer_index)
        shape = (self.n_customers, self.n_items)
        net = sp.csr_matrix((self.qty, (self.cust, self.item)), shape=shape)
        net.sum_duplicates()
        self.net = net
        pos = net.copy()
        pos.data = np.where(pos.data > 0, pos.data, 0.0)
        pos.eliminate_zeros()
        self.positive = pos  # net quantity, positive pairs only
        r = pos.copy()
        r.data = np.log1p(r.data)
        self.r = r.astype(np.float32)  # Encore's ALS input
        self.users = np.array([c for c, _ in self.targets], dtype=np.int32)

    def order_counts(self):
        keep = self.qty > 0
        triples = np.unique(np.stack([self.cust[keep], self.item[keep], self.order[keep]]), axis=1)
        m = sp.csr_matrix(
            (np.ones(triples.shape[1]), (triples[0], triples[1])),
            shape=(self.n_customers, self.n_items),
        )
        m.sum_duplicates()
        return m

    def popularity(self):
        """Encore's popularity list: distinct buyers per item in the window."""
        net_of_line = np.asarray(self.net[self.cust, self.item]).ravel()
        kept = (self.qty > 0) & (net_of_line > 0)
        if not kept.any():
            return []
        last = self.time[kept].max()
        window = self.meta.get("popularity_window_days", 90.0)
        cutoff = last - int(window * 86_400) if window > 0 else np.iinfo(np.int64).min

        def count(mask):
            pairs = np.unique(np.stack([self.item[mask], self.cust[mask]]), axis=1)
            items, n = np.unique(pairs[0], return_counts=True)
            order = np.lexsort((items, -n))
            return [int(i) for i in items[order]]

        ranked = count(kept & (self.time >= cutoff))
        return ranked if ranked else count(kept)


def clean(split, lists, kmax):
    out = []
    for lst in lists:
        seen, row = set(), []
        for i in lst:
            i = int(i)
            if i < 0 or i >= split.n_items or not split.available[i] or i in seen:
                continue
            seen.add(i)
            row.append(i)
            if len(row) == kmax:
                break
        out.append(row)
    return out


def score(split, lists):
    """Mean Recall@K and NDCG@K over the scored customers (model/src/metrics.rs)."""
    res = {}
    for k in split.ks:
        rec, ndcg = [], []
        for lst, (_, rel) in zip(lists, split.targets):
            hits = [1.0 if i in rel else 0.0 for i in lst[:k]]  # lists hold no repeats
            rec.append(sum(hits) / len(rel))
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), k)))
            ndcg.append(dcg / idcg if idcg > 0 else 0.0)
        res[f"recall@{k}"] = float(np.mean(rec))
        res[f"ndcg@{k}"] = float(np.mean(ndcg))
    return res


def kmax(split):
    return max(split.ks)


def als_lists(split, factors, reg, alpha, a):
    from als_implicit import implicit_als

    conf = split.r.copy()
    conf.data = (1.0 + alpha * conf.data).astype(np.float32)
    model = implicit_als(factors, reg, a.iterations, a.threads, a.seed)
    model.fit(conf, show_progress=False)
    ids, _ = model.recommend(
        split.users,
        conf[split.users],
        N=kmax(split),
        filter_already_liked_items=False,
        filter_items=split.unavailable if len(split.unavailable) else None,
    )
    return clean(split, ids, kmax(split))


def bm25_lists(split, k, b, a):
    from implicit.nearest_neighbours import BM25Recommender

    model = BM25Recommender(K=k, K1=1.2, B=b, num_threads=a.threads)
    model.fit(split.r, show_progress=False)
    # implicit 0.7.2's item-kNN `filter_items` calls np.in1d, which numpy 2.4
    # no longer has: ask for enough extra items and drop unavailable ones in clean().
    ids, _ = model.recommend(
        split.users,
        split.r[split.users],
        N=min(kmax(split) + len(split.unavailable), split.n_items),
        filter_already_liked_items=False,
    )
    return clean(split, ids, kmax(split))


def topfreq_lists(split, pad):
    counts = split.order_counts()
    pop = split.popularity() if pad else []
    out = []
    for c, _ in split.targets:
        row = split.positive.getrow(c)
        own = []
        for i, q in zip(row.indices, row.data):
            if split.available[i]:
                own.append((-counts[c, i], -q, int(i)))
        own.sort()
        lst = [i for _, _, i in own[: kmax(split)]]
        if pad and len(lst) < kmax(split):
            have = set(lst)
            lst += [i for i in pop if split.available[i] and i not in have][: kmax(split) - len(lst)]
        out.append(lst)
    return clean(split, out, kmax(split))


def tune(name, grid, build, val, test, a):
    key = f"recall@{val.ks[0]}"
    best = None
    for params in grid:
        t = time.perf_counter()
        m = score(val, build(val, *params, a))
        print(
            json.dumps({"tuning": name, "params": params, "validation": m,
                        "seconds": round(time.perf_counter() - t, 2)}),
            file=sys.stderr,
        )
        if best is None or m[key] > best[1][key]:
            best = (params, m)
    params, vm = best
    t = time.perf_counter()
    m = score(test, build(test, *params, a))
    return {"params": params, "validation": vm, "seconds": round(time.perf_counter() - t, 2), **m}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="directory written by encore-train evaluate --export-split")
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    ap.add_argument("--iterations", type=int, default=15, help="ALS iterations (Encore: 15)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true", help="one grid point each (smoke test)")
    a = ap.parse_args()

    test = Split(a.dir)
    val = Split(os.path.join(a.dir, "validation"))
    print(
        f"test: {len(test.targets)} customers, {int(sum(len(r) for _, r in test.targets))} targets, "
        f"{test.r.shape[0]} x {test.r.shape[1]} matrix, {test.r.nnz} pairs; "
        f"validation: {len(val.targets)} customers",
        file=sys.stderr,
    )
    als_grid = list(itertools.product([32, 64, 128], [0.01, 0.1, 1.0], [1.0, 10.0, 40.0]))
    bm25_grid = list(itertools.product([20, 50, 100, 200, 400], [0.25, 0.5, 0.75, 1.0]))
    if a.quick:
        als_grid, bm25_grid = [(64, 0.01, 10.0)], [(100, 0.75)]
    rows = []
    r = tune("implicit_als", als_grid, als_lists, val, test, a)
    r["params"] = dict(zip(["factors", "regularization", "alpha"], r["params"]))
    rows.append({"model": "implicit_als", **r})
    r = tune("implicit_bm25", bm25_grid, bm25_lists, val, test, a)
    r["params"] = dict(zip(["K", "B"], r["params"]))
    rows.append({"model": "implicit_bm25", **r})
    for name, pad in [("py_p_topfreq", False), ("py_gp_topfreq", True)]:
        t = time.perf_counter()
        m = score(test, topfreq_lists(test, pad))
        rows.append({"model": name, "params": {}, "seconds": round(time.perf_counter() - t, 2), **m})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
