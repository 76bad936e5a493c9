"""Shared fixtures: the bundled sample, a small configuration, the CLI binary."""

import os
import pathlib
import subprocess

import pandas as pd
import pytest

import encore

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "online_retail.csv.gz"
CATALOG = REPO / "data" / "sample" / "online_retail_catalog.csv"
COLUMNS = {
    "order_id": "InvoiceNo",
    "customer_id": "CustomerID",
    "item_id": "StockCode",
    "timestamp": "InvoiceDate",
    "quantity": "Quantity",
    "price": "UnitPrice",
}
COLUMNS_SPEC = ",".join(f"{k}={v}" for k, v in COLUMNS.items())
# Small enough to train in seconds on a debug build; every other key is the default.
CONFIG = {"als": {"factors": 16, "iterations": 4}}


def encore_train() -> pathlib.Path:
    """The encore-train binary: $ENCORE_TRAIN, else the cargo target directory's."""
    if "ENCORE_TRAIN" in os.environ:
        return pathlib.Path(os.environ["ENCORE_TRAIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "encore-train"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"no encore-train under {target}: build it (cargo build -p encore-training) "
        "or set ENCORE_TRAIN"
    )


def run_cli(*args: str) -> str:
    out = subprocess.run(
        [str(encore_train()), *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    ids = {c: str for c in ("InvoiceNo", "StockCode", "CustomerID")}
    return pd.read_csv(SAMPLE, dtype=ids)


@pytest.fixture(scope="session")
def config_file(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("config") / "small.toml"
    path.write_text(encore._encore.config_json_to_toml(__import__("json").dumps(CONFIG)))
    return path


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> encore.Model:
    """The sample trained from its file, as the CLI reads it."""
    rejects = tmp_path_factory.mktemp("rejects") / "rejects.csv"
    return encore.fit(
        SAMPLE, catalog=CATALOG, config=CONFIG, columns=COLUMNS, rejects=rejects
    )
