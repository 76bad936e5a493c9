"""Type stubs of the native module ``encore._encore`` (see ``python/src/lib.rs``).

Users call the package ``encore``; these are the functions it wraps. Answers
are ``arrow_array_stream`` PyCapsules (the Arrow PyCapsule interface).
"""

import os
from typing import Any, List, Literal, Optional, Tuple, Union

_Path = Union[str, "os.PathLike[str]"]
_Capsule = Any

class EncoreError(Exception):
    """Base class of the errors raised by encore."""

class DataError(EncoreError):
    """The purchase history or catalog cannot be read (file or DataFrame, line or row, field)."""

class ConfigError(EncoreError):
    """A configuration, column map or argument is not valid; the message names the key."""

class ModelError(EncoreError):
    """A model cannot be trained, saved or loaded, or cannot answer the query."""

class Purchases:
    """A purchase history read into memory, with its catalog metadata."""

    @staticmethod
    def from_path(
        path: _Path,
        columns: Optional[str] = None,
        catalog: Optional[_Path] = None,
        strict: bool = False,
        rejects: Optional[_Path] = None,
    ) -> "Purchases": ...
    @staticmethod
    def from_arrow(
        stream: _Capsule,
        name: str,
        columns: Optional[str] = None,
        catalog: Optional[_Path] = None,
        strict: bool = False,
        rejects: Optional[_Path] = None,
    ) -> "Purchases": ...
    def summary(self) -> str:
        """What ingestion read, kept and rejected."""
    def report_json(self) -> str:
        """The ingest report as JSON."""
    @property
    def catalog_unmatched(self) -> int:
        """Catalog rows naming items that are not in the history."""

class Model:
    """A trained engine: every model of one artifact.

    The wrapper ``encore.Model`` passes every argument: the defaults are its own.
    """

    @property
    def shape(self) -> Tuple[int, int]: ...
    def save(self, path: _Path) -> str: ...
    def manifest_json(self) -> str: ...
    def recommend(
        self,
        customer_ids: Optional[List[str]],
        k: int,
        include_purchased: bool,
        exclude: Optional[List[str]],
        category: Optional[str],
    ) -> _Capsule: ...
    def basket(
        self,
        items: List[str],
        k: int,
        exclude: Optional[List[str]],
        category: Optional[str],
    ) -> Tuple[_Capsule, bool]: ...
    def customers(self) -> _Capsule: ...
    def lists(
        self,
        kind: Literal["similar", "bought_together", "next_purchase", "buy_again"],
        ids: Optional[List[str]],
        k: int,
    ) -> _Capsule:
        """Per item (similar, bought_together) or per customer (next_purchase, buy_again)."""
    def audience(
        self,
        stages: str,
        segments: Optional[List[str]],
        min_p_alive: Optional[float],
        min_clv: Optional[float],
        k: int,
        limit: Optional[int],
        as_of: Optional[str],
        max_churn_risk: Optional[float],
    ) -> _Capsule: ...
    def kpis_json(self) -> str: ...
    def als_factor_bytes(self) -> Tuple[bytes, bytes, int]: ...
    def history_bytes(self) -> Tuple[bytes, bytes, bytes]: ...
    def ids(self) -> Tuple[List[str], List[str]]: ...

def check_config(path: Optional[_Path] = None, text: Optional[str] = None) -> str:
    """The complete configuration as TOML, validated as ``encore-train --config``."""

def config_json_to_toml(json: str) -> str:
    """A configuration dict (as JSON) written as TOML."""

def fit(
    purchases: Purchases, config_path: Optional[_Path] = None, config_text: Optional[str] = None
) -> Model: ...
def load(path: _Path) -> Model: ...
def evaluate(
    purchases: Purchases,
    holdout_from: str,
    ks: List[int],
    models: Optional[List[str]] = None,
    config_path: Optional[_Path] = None,
    config_text: Optional[str] = None,
    validation_days: Optional[float] = None,
    score_validation: bool = False,
) -> Tuple[str, str]:
    """(the text table, the JSON report) of ``encore-train evaluate``."""
