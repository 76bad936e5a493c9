"""The Spark job in local mode with 4 shards on the bundled sample, as
Parquet: the assembled artifact is the single-process fit's, file for file;
a missing or damaged shard makes the assembly refuse, naming the shard,
with nothing published.

Needs ENCORE_TRAIN (the encore-train binary; scripts/test.sh passes the one
cargo test built), pyspark, pandas and pyarrow, and Java 17 for Spark.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "spark" / "encore_spark.py"
SAMPLE = ROOT / "data" / "sample" / "online_retail.csv.gz"
CATALOG = ROOT / "data" / "sample" / "online_retail_catalog.csv"
COLUMNS = ("order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,"
           "timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice")
SHARDS = 4


def encore_train():
    path = os.environ.get("ENCORE_TRAIN")
    assert path and os.access(path, os.X_OK), (
        "set ENCORE_TRAIN to the encore-train binary (cargo build -p encore-training)")
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The sample as a directory of Parquet part files, as Spark writes it:
    string ids, a timestamp, float quantity and price."""
    table = pacsv.read_csv(
        SAMPLE,
        convert_options=pacsv.ConvertOptions(
            include_columns=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate",
                             "UnitPrice", "CustomerID"],
            column_types={"InvoiceNo": pa.string(), "StockCode": pa.string(),
                          "CustomerID": pa.string(), "Quantity": pa.float64(),
                          "UnitPrice": pa.float64(), "InvoiceDate": pa.timestamp("s")},
            timestamp_parsers=["%Y-%m-%d %H:%M:%S"],
        ),
    )
    out = tmp_path_factory.mktemp("history") / "online_retail.parquet"
    out.mkdir()
    rows = table.num_rows
    for part in range(3):
        lo, hi = rows * part // 3, rows * (part + 1) // 3
        pq.write_table(table.slice(lo, hi - lo), out / f"part-{part:05d}.snappy.parquet")
    (out / "_SUCCESS").write_bytes(b"")
    return out


@pytest.fixture(scope="module")
def single(history, tmp_path_factory):
    """The single-process fit of the same rows."""
    out = tmp_path_factory.mktemp("single") / "model"
    done = subprocess.run(
        [encore_train(), "fit", "--input", str(history), "--columns", COLUMNS,
         "--catalog", str(CATALOG), "--no-eval", "--out", str(out)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def job(history, work, *target, extra=()):
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    return subprocess.run(
        [sys.executable, str(JOB), "--master", f"local[{SHARDS}]",
         "--encore-train", encore_train(), "--input", str(history),
         "--columns", COLUMNS, "--catalog", str(CATALOG), "--no-eval",
         "--shards", str(SHARDS), "--work", str(work), *target, *extra],
        capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def sharded(history, tmp_path_factory):
    """The job's run: its work directory and the artifact it wrote."""
    base = tmp_path_factory.mktemp("spark")
    work, out = base / "work", base / "model"
    done = job(history, work, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return work, out


def model_files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != "manifest.json"}


def manifest(path):
    m = json.loads((path / "manifest.json").read_text())
    del m["model_version"], m["created_at"]
    return m


def test_four_spark_shards_give_the_single_process_model(single, sharded):
    work, out = sharded
    parts = sorted((work / "parts").iterdir())
    assert [p.name for p in parts] == [f"part-{s:05d}-of-{SHARDS:05d}" for s in range(SHARDS)]
    # Every shard ran and made the lists of its customers.
    customers = [json.loads((p / "part.json").read_text())["customers"] for p in parts]
    assert all(c > 0 for c in customers)
    assert sum(customers) == manifest(single)["data"]["customers"]
    ours, theirs = model_files(out), model_files(single)
    for name in ["for_you.csr", "new_items.csr", "customer_profiles.bin", "customer_orders.bin",
                 "replenishment.bin", "customers.json"]:
        assert name in ours, name
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], f"{name} differs from the single-process fit"
    assert manifest(out) == manifest(single)


def assemble_only(history, work, *target):
    return job(history, work, *target, extra=["--assemble-only"])


def test_a_missing_or_damaged_shard_is_refused_and_nothing_published(
        history, sharded, tmp_path):
    work, _ = sharded
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    store = tmp_path / "store"
    parts = copy / "parts"

    damaged = parts / f"part-00002-of-{SHARDS:05d}"
    lists = damaged / "for_you.csr"
    data = bytearray(lists.read_bytes())
    data[len(data) // 2] ^= 0x55
    lists.write_bytes(bytes(data))
    done = assemble_only(history, copy, "--store", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"shard 2 ({damaged}): damaged" in done.stderr, done.stderr
    assert "checksum" in done.stderr
    assert "nothing was published" in done.stderr

    missing = parts / f"part-00001-of-{SHARDS:05d}"
    shutil.rmtree(missing)
    done = assemble_only(history, copy, "--store", str(store))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"shard part {missing}: missing" in done.stderr, done.stderr

    # Nothing in the store: no version, no CURRENT.
    versions = store / "versions"
    assert not versions.exists() or not any(versions.iterdir())
    assert not (store / "CURRENT").exists()
