"""encore's Model.recommend against implicit's batch recommend, on the same factors.

    python bench/python_vs_implicit.py MODEL_DIR [--runs 5] [--k 10] [--threads 2]

MODEL_DIR is an artifact (encore-train fit --out, or encore.fit(...).save).
The benchmark in docs/benchmarks.md uses the 100k customers x 20k items x 5M
lines synthetic history:

    cargo run --release -p encore-data --example synth -- /tmp/s100k.csv \\
        --customers 100000 --items 20000 --purchases 5000000
    target/release/encore-train fit --input /tmp/s100k.csv --out /tmp/s100k-model --no-eval

It needs the encore wheel built in release mode (pip install ./python, or
maturin build --release) and implicit, numpy, scipy, threadpoolctl.

Both sides list the k best items each customer has not bought, for every
customer of the model, from the model's own ALS factors: implicit's
AlternatingLeastSquares gets encore's factors and purchase matrix, so both
score the same dot products. encore is timed end to end, ids in and a pandas
DataFrame of string ids out; implicit from index arrays to index arrays
(no id mapping, no DataFrame), which favours implicit. The two alternate
RUNS times; the script prints each run, the medians and the ratio of
throughputs, and how many lists agree (ties may order differently).
"""

import argparse
import os
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    # Both sides get the same number of threads.
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    import encore

    model = encore.load(args.model)
    users, items = model.als_factors()
    indptr, indices, values = model.purchase_matrix()
    n_users, n_items = model.shape
    history = sp.csr_matrix((values, indices, indptr), shape=(n_users, n_items))
    customers = model.customer_ids
    print(f"model {args.model}: {n_users} customers x {n_items} items, "
          f"{users.shape[1]} factors, {history.nnz} bought pairs; k={args.k}, {args.threads} threads")

    als = AlternatingLeastSquares(factors=users.shape[1], num_threads=args.threads)
    als.user_factors = np.ascontiguousarray(users)
    als.item_factors = np.ascontiguousarray(items)
    userids = np.arange(n_users, dtype=np.int32)

    def run_encore():
        return model.recommend(customers, k=args.k)

    def run_implicit():
        with threadpool_limits(limits=1, user_api="blas"):
            return als.recommend(userids, history, N=args.k, filter_already_liked_items=True)

    ours_t, theirs_t = [], []
    for run in range(args.runs):
        start = time.perf_counter()
        ours = run_encore()
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs_ids, _ = run_implicit()
        theirs_t.append(time.perf_counter() - start)
        print(f"run {run + 1}: encore {ours_t[-1]:.2f}s, implicit {theirs_t[-1]:.2f}s")

    # Agreement: the same set of k items for a customer.
    item_ids = np.array(model.item_ids, dtype=object)
    ours_sets = ours.groupby("customer_id", sort=False)["item_id"].apply(frozenset)
    same = sum(
        ours_sets.get(c, frozenset()) == frozenset(item_ids[theirs_ids[i]])
        for i, c in enumerate(customers)
    )
    m_ours, m_theirs = statistics.median(ours_t), statistics.median(theirs_t)
    print(f"lists with the same {args.k} items: {same} of {n_users} ({100 * same / n_users:.1f} %)")
    print(f"median of {args.runs}: encore {m_ours:.2f}s ({n_users / m_ours:,.0f} customers/s), "
          f"implicit {m_theirs:.2f}s ({n_users / m_theirs:,.0f} customers/s); "
          f"throughput ratio encore / implicit {m_theirs / m_ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
