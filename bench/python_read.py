"""encore.read_purchases from a DataFrame, a pyarrow Table and a Parquet file of the same rows.

    python bench/python_read.py HISTORY.csv [--runs 3]

HISTORY.csv is a history in the canonical columns (e.g. the synth example's
output, see docs/benchmarks.md). It is read once with pyarrow.csv (ids as
strings), written as Parquet beside it (HISTORY.parquet), and turned into a
pandas DataFrame; then the three are read alternately RUNS times and the
medians printed.
"""

import argparse
import statistics
import time

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

import encore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    ids = {c: pa.string() for c in ("order_id", "customer_id", "item_id")}
    table = pcsv.read_csv(args.history, convert_options=pcsv.ConvertOptions(column_types=ids))
    parquet = args.history.rsplit(".", 1)[0] + ".parquet"
    pq.write_table(table, parquet)
    frame = table.to_pandas()
    times = {"parquet": [], "pandas": [], "arrow": []}
    for run in range(args.runs):
        for name, source in (("parquet", parquet), ("pandas", frame), ("arrow", table)):
            start = time.perf_counter()
            read = encore.read_purchases(source)
            times[name].append(time.perf_counter() - start)
            print(f"run {run + 1} {name}: {times[name][-1]:.2f}s ({read.summary().splitlines()[0]})")
    base = statistics.median(times["parquet"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name}: median {m:.2f}s, {m / base:.2f} x the Parquet time")


if __name__ == "__main__":
    main()
