#!/usr/bin/env python3
"""Train and serve the `implicit` library's ALS on a matrix written by
`cargo run --release -p encore-model --example als_bench -- --write DIR`.

The matrix files are raw little-endian arrays: DIR/indptr.u64, DIR/indices.u32,
DIR/data.f32 and DIR/shape.txt ("rows cols nnz"). Rows are users, columns items,
values the interaction strength r.

`implicit` uses the matrix value itself as the confidence, while Encore uses
c = 1 + alpha * r; this script hands implicit 1 + alpha * r (and alpha = 1) so
that both minimise the same objective. Prints human-readable lines and one
`RESULT key=value ...` line with the same keys as the Rust example.

Run it with OPENBLAS_NUM_THREADS=1 (implicit parallelises itself and warns
otherwise); bench/als_vs_implicit.sh does.
"""

import argparse
import os
import resource
import sys
import time

import numpy as np
import scipy.sparse as sp


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_matrix(d):
    with open(os.path.join(d, "shape.txt")) as f:
        rows, cols, nnz = (int(x) for x in f.read().split())
    indptr = np.fromfile(os.path.join(d, "indptr.u64"), dtype="<u8", count=rows + 1)
    indices = np.fromfile(os.path.join(d, "indices.u32"), dtype="<u4", count=nnz)
    data = np.fromfile(os.path.join(d, "data.f32"), dtype="<f4", count=nnz)
    # int32 index arrays: what scipy would pick for this size, and what keeps
    # implicit's own copies small.
    return rows, cols, indptr.astype(np.int32), indices.astype(np.int32), data


def objective(x, y, m, alpha_in_values, reg):
    """Encore's objective (see model/src/cf/als.rs), in float64, from the
    confidence matrix m (values c = 1 + alpha r)."""
    x64 = x.astype(np.float64)
    y64 = y.astype(np.float64)
    g = y64.T @ y64
    total = 0.0
    step = 8192
    for lo in range(0, x64.shape[0], step):
        xb = x64[lo : lo + step]
        total += float(np.sum((xb @ g) * xb))
        mb = m[lo : lo + step].tocoo()
        s = np.sum(xb[mb.row] * y64[mb.col], axis=1)
        c = mb.data.astype(np.float64)
        total += float(np.sum(c * (1.0 - s) ** 2 - s * s))
    total += reg * (float(np.sum(x64 * x64)) + float(np.sum(y64 * y64)))
    return total


def implicit_als(factors, reg, iterations, threads, seed):
    """implicit's CPU ALS with conjugate gradient, as both benches configure it:
    float32, no training loss, confidence already in the matrix (alpha 1)."""
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=factors,
        regularization=reg,
        alpha=1.0,
        iterations=iterations,
        use_cg=True,
        use_native=True,
        calculate_training_loss=False,
        num_threads=threads,
        random_state=seed,
        dtype=np.float32,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--read", required=True, help="matrix directory")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--reg", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--cg-steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rec-users", type=int, default=None)
    ap.add_argument("--no-exclude", action="store_true")
    ap.add_argument("--no-recommend", action="store_true")
    ap.add_argument("--loss", action="store_true")
    a = ap.parse_args()

    import implicit

    t0 = time.perf_counter()
    rows, cols, indptr, indices, data = read_matrix(a.read)
    conf = (1.0 + np.float32(a.alpha) * data).astype(np.float32)
    del data
    user_items = sp.csr_matrix((conf, indices, indptr), shape=(rows, cols))
    del conf, indices, indptr
    print(
        f"matrix: {rows} x {cols}, {user_items.nnz} nonzeros "
        f"(read in {time.perf_counter() - t0:.2f} s); implicit {implicit.__version__}"
    )

    model = implicit_als(a.factors, a.reg, a.iterations, a.threads, a.seed)
    model.cg_steps = a.cg_steps
    per_iter = []

    def on_iteration(iteration, elapsed, _loss):
        per_iter.append(elapsed)
        if iteration == 0 or iteration == a.iterations - 1:
            print(f"  iteration {iteration + 1}: {elapsed:.3f} s")

    print(
        f"training: factors={a.factors} reg={a.reg} iterations={a.iterations} "
        f"cg_steps={a.cg_steps} threads={a.threads or os.cpu_count()}"
    )
    start = time.perf_counter()
    model.fit(user_items, show_progress=False, callback=on_iteration)
    train = time.perf_counter() - start
    median_iter = sorted(per_iter)[len(per_iter) // 2]
    rss_train = peak_rss_mib()
    print(
        f"train: {train:.3f} s total, median {median_iter:.3f} s/iteration, "
        f"peak RSS {rss_train:.1f} MiB"
    )
    result = f"RESULT train_s={train:.4f} iter_s={median_iter:.4f} rss_train_mib={rss_train:.1f}"

    if a.loss:
        t = time.perf_counter()
        loss = objective(model.user_factors, model.item_factors, user_items, a.alpha, a.reg)
        print(f"loss: {loss:.6e} ({time.perf_counter() - t:.3f} s to compute)")
        result += f" loss={loss:.6e}"

    if not a.no_recommend:
        n = rows if a.rec_users is None else min(a.rec_users, rows)
        ids = np.arange(n, dtype=np.int32)
        filt = user_items[:n] if not a.no_exclude else None
        t = time.perf_counter()
        if filt is None:
            rec_ids, _ = model.recommend(ids, None, N=a.k, filter_already_liked_items=False)
        else:
            rec_ids, _ = model.recommend(ids, filt, N=a.k, filter_already_liked_items=True)
        secs = time.perf_counter() - t
        rate = n / secs
        print(
            f"recommend: {n} users, k={a.k}, exclude={not a.no_exclude}: "
            f"{secs:.3f} s, {rate:.0f} users/s ({rec_ids.size} ids)"
        )
        result += f" rec_s={secs:.4f} rec_users_per_s={rate:.1f}"
    result += f" rss_mib={peak_rss_mib():.1f}"
    print(result)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
