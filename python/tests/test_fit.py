"""Fitting from every input kind, saving and loading, and agreement with encore-train."""

import io
import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import encore
from conftest import CATALOG, COLUMNS, COLUMNS_SPEC, CONFIG, SAMPLE, run_cli


def _report(purchases):
    return json.loads(purchases.report_json())


def test_dataframes_tables_and_files_read_the_same_rows(sample_frame):
    from_pandas = encore.read_purchases(sample_frame, columns=COLUMNS)
    from_polars = encore.read_purchases(pl.from_pandas(sample_frame), columns=COLUMNS)
    from_arrow = encore.read_purchases(
        pa.Table.from_pandas(sample_frame, preserve_index=False), columns=COLUMNS_SPEC
    )
    from_file = encore.read_purchases(SAMPLE, columns=COLUMNS)
    reports = [_report(p) for p in (from_pandas, from_polars, from_arrow, from_file)]
    for r in reports[1:]:
        for key in ("rows_read", "rows_accepted", "rejected", "returns"):
            assert r.get(key) == reports[0].get(key), key
    # The in-memory fingerprint hashes the accepted rows: equal for equal rows.
    assert reports[0]["fingerprint"].startswith("sha256:")
    assert reports[0]["fingerprint"] == reports[1]["fingerprint"] == reports[2]["fingerprint"]
    changed = sample_frame.copy()
    changed.loc[0, "Quantity"] = 7
    assert _report(encore.read_purchases(changed, columns=COLUMNS))["fingerprint"] != reports[0]["fingerprint"]


def test_save_load_round_trip(model, tmp_path):
    manifest = model.save(tmp_path / "m")
    loaded = encore.load(tmp_path / "m")
    assert loaded.manifest["model_version"] == manifest["model_version"]
    assert loaded.shape == model.shape
    pd.testing.assert_frame_equal(loaded.recommend(k=7), model.recommend(k=7))
    pd.testing.assert_frame_equal(
        loaded.recommend(k=7, include_purchased=True), model.recommend(k=7, include_purchased=True)
    )
    pd.testing.assert_frame_equal(loaded.customers(), model.customers())


def _cli_lists(model_dir, *extra, k=10):
    text = run_cli("recommend", "--model", str(model_dir), "--k", str(k), *extra)
    return pd.read_csv(io.StringIO(text), dtype={"customer_id": str, "item_id": str, "similar_item_id": str})


def _same_lists(ours, cli, key, item):
    assert list(ours.columns) == list(cli.columns)
    assert len(ours) == len(cli) > 0
    assert ours[key].tolist() == cli[key].tolist()
    assert ours["rank"].tolist() == cli["rank"].tolist()
    assert ours[item].tolist() == cli[item].tolist()
    # The CLI prints f32 scores in their shortest round-trip form.
    assert (ours["score"].astype("float64") - cli["score"]).abs().max() < 1e-6


# k=60 is longer than the new-item heads a model keeps (50): scored in blocks.
@pytest.mark.parametrize("include_purchased,k", [(False, 10), (True, 10), (False, 60)])
def test_recommendations_equal_the_clis_on_a_python_saved_model(model, tmp_path, include_purchased, k):
    model.save(tmp_path / "m")
    extra = ["--include-purchased"] if include_purchased else []
    cli = _cli_lists(tmp_path / "m", *extra, k=k)
    ours = model.recommend(k=k, include_purchased=include_purchased)
    _same_lists(ours, cli, "customer_id", "item_id")


def test_item_lists_equal_the_clis(model, tmp_path):
    model.save(tmp_path / "m")
    for kind, ours in (("similar", model.similar(k=10)), ("bought-together", model.bought_together(k=10))):
        _same_lists(ours, _cli_lists(tmp_path / "m", "--list", kind), "item_id", "similar_item_id")


def test_a_cli_trained_model_loads_and_python_fits_the_same_model(config_file, tmp_path, sample_frame):
    """encore-train fit and encore.fit on the same rows and configuration give the same lists."""
    out = tmp_path / "cli"
    run_cli(
        "fit", "--input", str(SAMPLE), "--columns", COLUMNS_SPEC, "--catalog", str(CATALOG),
        "--config", str(config_file), "--no-eval", "--out", str(out),
        "--rejects", str(tmp_path / "rejects.csv"),
    )
    cli_model = encore.load(out)
    ours = encore.fit(sample_frame, catalog=CATALOG, config=config_file, columns=COLUMNS)
    assert cli_model.shape == ours.shape
    _same_lists(ours.recommend(k=10), _cli_lists(out), "customer_id", "item_id")
    pd.testing.assert_frame_equal(ours.similar(k=5), cli_model.similar(k=5))


def test_evaluate_prints_the_clis_table(tmp_path, config_file):
    ours = encore.evaluate(
        SAMPLE, holdout_from="2011-11-01", models=["popularity", "als"], k=(10, 20),
        columns=COLUMNS, config=CONFIG,
    )
    cli = run_cli(
        "evaluate", "--input", str(SAMPLE), "--columns", COLUMNS_SPEC, "--config", str(config_file),
        "--holdout-from", "2011-11-01", "--models", "popularity,als", "--k", "10,20",
        "--rejects", str(tmp_path / "rejects.csv"),
    )
    assert ours.table.strip() in cli
    assert list(ours.metrics["model"]) == ["popularity", "als"]
    assert ours.metrics["recall@10"].between(0, 1).all()
    assert ours.report["ks"] == [10, 20]
