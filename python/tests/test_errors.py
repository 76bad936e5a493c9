"""Every error class, carrying the Rust message."""

import pandas as pd
import pytest

import encore
from conftest import COLUMNS, SAMPLE


def test_error_classes_share_a_base():
    for cls in (encore.DataError, encore.ConfigError, encore.ModelError):
        assert issubclass(cls, encore.EncoreError)
        assert issubclass(cls, Exception)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(encore.DataError, match="nope.csv"):
        encore.fit(tmp_path / "nope.csv")


def test_missing_column_names_the_column():
    frame = pd.DataFrame({"customer_id": ["a"], "item_id": ["x"]})
    with pytest.raises(encore.DataError, match="no column 'timestamp'"):
        encore.fit(frame)


def test_strict_names_the_row_and_field():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "item_id": ["x", "y", "z"],
            "timestamp": ["2024-01-01", "2024-01-02", "not a date"],
        }
    )
    with pytest.raises(encore.DataError, match=r"DataFrame: row group 0, row 2: .*timestamp"):
        encore.read_purchases(frame, strict=True)


def test_unsupported_column_type_is_named():
    frame = pd.DataFrame(
        {"customer_id": [1.5], "item_id": ["x"], "timestamp": ["2024-01-01"]}
    )
    with pytest.raises(encore.DataError, match="customer_id.*Float64, expected a string or integer"):
        encore.read_purchases(frame)


def test_unknown_config_key_is_named():
    with pytest.raises(encore.ConfigError, match="factorz"):
        encore.fit(SAMPLE, config={"als": {"factorz": 8}}, columns=COLUMNS)


def test_bad_config_value_is_named():
    with pytest.raises(encore.ConfigError, match="als.factors"):
        encore.fit(SAMPLE, config={"als": {"factors": 0}}, columns=COLUMNS)


def test_bad_column_map_is_a_config_error():
    with pytest.raises(encore.ConfigError, match="colour"):
        encore.read_purchases(SAMPLE, columns={"colour": "x"})


def test_bad_arguments_are_config_errors(model):
    with pytest.raises(encore.ConfigError, match="k must be between 1 and 1000"):
        model.recommend(k=0)
    with pytest.raises(encore.ConfigError, match="stages"):
        model.audience(stages="asleep")
    with pytest.raises(encore.ConfigError, match="max_churn_risk must be within"):
        model.audience(max_churn_risk=2.0)
    with pytest.raises(encore.ConfigError, match="k must be between 1 and 200, got 0"):
        model.audience(k=0)
    with pytest.raises(encore.ConfigError, match="segments 'nope' is not an RFM segment"):
        model.audience(segments=["nope"])


def test_unloadable_model_is_a_model_error(tmp_path):
    with pytest.raises(encore.ModelError, match="cannot load the model"):
        encore.load(tmp_path)


def test_nothing_to_score_is_a_model_error():
    with pytest.raises(encore.ModelError):
        encore.evaluate(SAMPLE, holdout_from="2030-01-01", models=["popularity"], columns=COLUMNS)
