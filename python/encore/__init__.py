"""Encore from Python: train, evaluate and query the engine with DataFrames.

A thin layer over the Rust engine that ``encore-train`` and ``encore-serve``
run: the same ingestion, training, artifact, lists and customer figures.
Purchase histories go in as pandas or polars DataFrames, pyarrow Tables (handed
over through the Arrow C data interface, not row by row) or file paths; every
answer comes out as a pandas DataFrame.

>>> import encore
>>> model = encore.fit("purchases.parquet")          # doctest: +SKIP
>>> model.recommend(["17850"], k=5)                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import pyarrow as pa

from . import _encore
from ._encore import ConfigError, DataError, EncoreError, ModelError, Purchases

__all__ = [
    "ConfigError",
    "DataError",
    "EncoreError",
    "Evaluation",
    "Model",
    "ModelError",
    "Purchases",
    "default_config",
    "evaluate",
    "fit",
    "load",
    "read_purchases",
]

PathLike = Union[str, "os.PathLike[str]"]
Columns = Union[str, Mapping[str, str], None]
Config = Union[PathLike, Mapping[str, Any], None]

_FIELDS = ("order_id", "customer_id", "item_id", "timestamp", "quantity", "price")


class _Stream:
    """An Arrow PyCapsule stream, for ``pyarrow.table``."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._capsule


def _frame(capsule: Any) -> pd.DataFrame:
    table = pa.table(_Stream(capsule))
    coded = [f for f in table.schema if pa.types.is_dictionary(f.type)]
    if table.num_rows == 0:
        # Nothing to share: decoded, the columns get the plain dtypes.
        for f in coded:
            i = table.schema.get_field_index(f.name)
            table = table.set_column(i, f.name, table[f.name].cast(f.type.value_type))
        return table.to_pandas()
    frame = table.to_pandas()
    # Dictionary-encoded id columns arrive as Categoricals: turned back into
    # plain string columns by indexing the distinct ids with the codes, which
    # shares one string object per id instead of making one per row.
    for f in coded:
        column = frame[f.name]
        frame[f.name] = column.cat.categories.take(column.cat.codes.to_numpy())
    return frame


def _columns_spec(columns: Columns) -> Optional[str]:
    if columns is None or isinstance(columns, str):
        return columns
    if isinstance(columns, Mapping):
        return ",".join(f"{field}={header}" for field, header in columns.items())
    raise ConfigError(
        "columns is a dict {field: column name} or a 'field=Column,...' string, "
        f"not {type(columns).__name__} (fields: {', '.join(_FIELDS)})"
    )


def _config_args(config: Config) -> Tuple[Optional[str], Optional[str]]:
    """(path, TOML text) for the native side, which validates either."""
    if config is None:
        return None, None
    if isinstance(config, Mapping):
        return None, _encore.config_json_to_toml(json.dumps(config))
    if isinstance(config, (str, os.PathLike)):
        return os.fspath(config), None
    raise ConfigError(
        f"config is a dict or the path of a TOML file, not {type(config).__name__}"
    )


def _arrow_stream(data: Any) -> Any:
    """The Arrow C stream capsule of a DataFrame or Table (no row-by-row copy)."""
    if isinstance(data, pd.DataFrame):
        # Columns are converted whole (zero-copy where the dtype allows).
        return pa.Table.from_pandas(data, preserve_index=False).__arrow_c_stream__()
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    if hasattr(data, "to_arrow"):  # older polars
        return data.to_arrow().__arrow_c_stream__()
    raise DataError(
        "purchases must be a pandas or polars DataFrame, a pyarrow Table or the "
        f"path of a CSV or Parquet file, not {type(data).__name__}"
    )


def _catalog_path(catalog: Any, keep: List[Any]) -> Optional[str]:
    if catalog is None or isinstance(catalog, (str, os.PathLike)):
        return None if catalog is None else os.fspath(catalog)
    # A catalog DataFrame (a few columns per item) goes through a CSV file so
    # that it is read and checked exactly as the CLI's --catalog.
    frame = catalog if isinstance(catalog, pd.DataFrame) else pa.table(catalog).to_pandas()
    tmp = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    keep.append(tmp.name)
    frame.to_csv(tmp, index=False)
    tmp.close()
    return tmp.name


def read_purchases(
    purchases: Any,
    catalog: Any = None,
    columns: Columns = None,
    strict: bool = False,
    rejects: Optional[PathLike] = None,
) -> Purchases:
    """Reads a purchase history once, to fit and evaluate on it several times.

    ``purchases``: a pandas or polars DataFrame, a pyarrow Table (or anything
    with ``__arrow_c_stream__``), or the path of a CSV file, a Parquet file or
    a directory of Parquet part files. ``catalog``: a path or DataFrame with
    ``item_id,title,category,available``. ``columns``: which column holds each
    field, ``{"customer_id": "CustomerID", ...}`` or the CLI's
    ``"customer_id=CustomerID,..."``. Rows that cannot be used are counted and
    skipped (written to ``rejects`` if given; for a file the CLI's default
    ``<file name>.rejects.csv`` in the current directory); ``strict=True``
    raises :class:`DataError` on the first one instead.
    """
    if isinstance(purchases, Purchases):
        return purchases
    spec = _columns_spec(columns)
    tmp: List[str] = []
    try:
        catalog_path = _catalog_path(catalog, tmp)
        rejects = None if rejects is None else os.fspath(rejects)
        if isinstance(purchases, (str, os.PathLike)):
            return Purchases.from_path(
                os.fspath(purchases), spec, catalog_path, strict, rejects
            )
        stream = _arrow_stream(purchases)
        return Purchases.from_arrow(
            stream, type(purchases).__name__, spec, catalog_path, strict, rejects
        )
    finally:
        for name in tmp:
            os.unlink(name)


def default_config() -> str:
    """The complete default training configuration, as TOML."""
    return _encore.check_config()


def _ids(ids: Any) -> Optional[List[str]]:
    if ids is None:
        return None
    if isinstance(ids, (str, bytes, int)):
        ids = [ids]
    return [i if isinstance(i, str) else str(i) for i in ids]


class Model:
    """A trained engine: every model of one artifact, as ``encore-serve`` loads it.

    Made by :func:`fit` or :func:`load`. Every query runs in Rust with the GIL
    released, in parallel over the ids asked for.
    """

    def __init__(self, native: "_encore.Model", ingest_summary: Optional[str] = None):
        self._native = native
        #: What ingestion read, kept and rejected (``None`` for a loaded model).
        self.ingest_summary = ingest_summary

    def __repr__(self) -> str:
        return repr(self._native)

    @property
    def shape(self) -> Tuple[int, int]:
        """(customers, items) the model knows."""
        return self._native.shape

    @property
    def manifest(self) -> Dict[str, Any]:
        """The artifact manifest: version, data summary, configuration, metrics."""
        return json.loads(self._native.manifest_json())

    @property
    def customer_ids(self) -> List[str]:
        """The customer ids in the model's index order (rows of :meth:`als_factors`)."""
        return self._native.ids()[0]

    @property
    def item_ids(self) -> List[str]:
        """The item ids in the model's index order."""
        return self._native.ids()[1]

    def als_factors(self) -> Tuple["np.ndarray", "np.ndarray"]:
        """The ALS embeddings: (customers x factors, items x factors) ``float32`` arrays,
        rows in the order of :attr:`customer_ids` and :attr:`item_ids`."""
        import numpy as np

        users, items, factors = self._native.als_factor_bytes()
        u = np.frombuffer(users, dtype="<f4").reshape(-1, factors)
        v = np.frombuffer(items, dtype="<f4").reshape(-1, factors)
        return u, v

    def purchase_matrix(self) -> Tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """The customer x item purchase matrix of the training period in CSR form,
        ``(indptr, indices, values)``: ``scipy.sparse.csr_matrix((values, indices,
        indptr))`` builds it."""
        import numpy as np

        indptr, indices, values = self._native.history_bytes()
        return (
            np.frombuffer(indptr, dtype="<u8").astype(np.int64),
            np.frombuffer(indices, dtype="<u4").astype(np.int32),
            np.frombuffer(values, dtype="<f4"),
        )

    def save(self, path: PathLike) -> Dict[str, Any]:
        """Writes the artifact directory (replaced atomically) that ``encore-serve``
        serves and ``encore-train`` reads; returns its manifest."""
        return json.loads(self._native.save(os.fspath(path)))

    def recommend(
        self,
        customer_ids: Any = None,
        k: int = 10,
        include_purchased: bool = False,
        exclude: Optional[Iterable[str]] = None,
        category: Optional[str] = None,
    ) -> pd.DataFrame:
        """Personal lists: ``customer_id, rank, item_id, score``, best first.

        Without ``include_purchased``, items the customer has not bought (ALS),
        as ``encore-train recommend`` writes them; with it, the repeat-aware
        "for you" list. ``exclude`` (item ids) and ``category`` filter as the
        API's query parameters do. An unknown customer gets the popularity
        list. ``customer_ids=None`` means every customer of the model.
        """
        return _frame(
            self._native.recommend(
                _ids(customer_ids), k, include_purchased, _ids(exclude), category
            )
        )

    def similar(self, item_ids: Any = None, k: int = 10) -> pd.DataFrame:
        """Items closest in the embedding space: ``item_id, rank, similar_item_id, score``.
        Unknown items have no rows."""
        return _frame(self._native.lists("similar", _ids(item_ids), k))

    def bought_together(self, item_ids: Any = None, k: int = 10) -> pd.DataFrame:
        """Items most often bought in the same orders:
        ``item_id, rank, similar_item_id, score``. Unknown items have no rows."""
        return _frame(self._native.lists("bought_together", _ids(item_ids), k))

    def basket(
        self,
        items: Iterable[str],
        k: int = 10,
        exclude: Optional[Iterable[str]] = None,
        category: Optional[str] = None,
    ) -> pd.DataFrame:
        """A list for an anonymous basket: ``rank, item_id, score``.

        The attribute ``fallback`` of the result (``df.attrs["fallback"]``) is
        true when no basket item was known and the popularity list answered.
        """
        capsule, fallback = self._native.basket(_ids(items) or [], k, _ids(exclude), category)
        df = _frame(capsule)
        df.attrs["fallback"] = fallback
        return df

    def customers(self) -> pd.DataFrame:
        """One row per customer with every profile field, as ``encore-train customers``:
        RFM, segments, lifecycle stage, P(alive), expected purchases, CLV."""
        return _frame(self._native.customers())

    def next_purchase(self, customer_ids: Any = None, k: int = 10) -> pd.DataFrame:
        """The items of a next-purchase message per customer: due replenishments,
        then new items (``customer_id, rank, item_id, reason, score, due_date``).
        Customers unknown to the model or without a profile have no rows; the
        forecast figures are in :meth:`customers`."""
        return _frame(self._native.lists("next_purchase", _ids(customer_ids), k))

    def buy_again(self, customer_ids: Any = None, k: int = 10) -> pd.DataFrame:
        """Previously bought items, most due first, with their due dates and cycles.
        Customers unknown to the model or without a profile have no rows."""
        return _frame(self._native.lists("buy_again", _ids(customer_ids), k))

    def audience(
        self,
        stages: Union[str, Sequence[str]] = ("dormant", "at_risk"),
        segments: Optional[Sequence[str]] = None,
        min_p_alive: Optional[float] = None,
        min_clv: Optional[float] = None,
        k: int = 5,
        limit: Optional[int] = None,
        as_of: Optional[str] = None,
        max_churn_risk: Optional[float] = None,
    ) -> pd.DataFrame:
        """A reactivation audience, one row per suggested item:
        ``customer_id, send_date, rank, item_id, reason, score, due_date``,
        customers highest CLV first; the filters of ``GET /v1/audiences/reactivation``.
        ``min_p_alive`` on a model that reports no P(alive) raises
        ``ConfigError``; ``max_churn_risk`` filters by churn risk instead."""
        if not isinstance(stages, str):
            stages = ",".join(stages)
        return _frame(
            self._native.audience(
                stages, _ids(segments), min_p_alive, min_clv, k, limit, as_of,
                max_churn_risk,
            )
        )

    def kpis(self) -> Dict[str, Any]:
        """Repurchase KPIs (``GET /v1/kpis``): DataFrames ``overall`` (one row),
        ``monthly``, ``cohorts``, ``stage_counts``, ``segment_counts``; and
        ``as_of``, ``customers`` and the customer model fits (``models``)."""
        body = json.loads(self._native.kpis_json())
        counts = lambda d, name: pd.DataFrame(  # noqa: E731
            {name: list(d.keys()), "customers": list(d.values())}
        )
        return {
            "as_of": body["as_of"],
            "customers": body["customers"],
            "overall": pd.DataFrame([body["overall"]]),
            "monthly": pd.DataFrame(body["monthly"]),
            "cohorts": pd.DataFrame(body["cohorts"]),
            "stage_counts": counts(body["stage_counts"], "stage"),
            "segment_counts": counts(body["segment_counts"], "segment"),
            "behaviour_segments": body["behaviour_segments"],
            "models": body["models"],
        }


def fit(
    purchases: Any,
    catalog: Any = None,
    config: Config = None,
    columns: Columns = None,
    strict: bool = False,
    rejects: Optional[PathLike] = None,
) -> Model:
    """Trains every model on a purchase history, as ``encore-train fit --no-eval``.

    ``purchases``, ``catalog``, ``columns``, ``strict`` and ``rejects``: see
    :func:`read_purchases` (a :class:`Purchases` read before is used as is).
    ``config``: a dict of sections (``{"als": {"factors": 32}}``) or the path of
    a TOML file, checked as the CLI checks ``--config``: an unknown key or a bad
    value raises :class:`ConfigError` naming it. The GIL is released while
    training.
    """
    path, text = _config_args(config)
    data = read_purchases(purchases, catalog, columns, strict, rejects)
    return Model(_encore.fit(data, path, text), data.summary())


def load(path: PathLike) -> Model:
    """Loads an artifact directory written by ``encore-train fit`` or :meth:`Model.save`."""
    return Model(_encore.load(os.fspath(path)))


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: ``table`` is the text ``encore-train evaluate``
    prints, ``report`` the JSON its ``--report`` writes, ``metrics`` one row a model."""

    table: str
    report: Dict[str, Any]
    metrics: pd.DataFrame = field(repr=False)

    def __str__(self) -> str:
        return self.table

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython
        p.text(self.table)


def _timestamp(value: Any) -> str:
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def evaluate(
    purchases: Any,
    holdout_from: Any,
    models: Optional[Sequence[str]] = None,
    k: Union[int, Sequence[int]] = (10, 20),
    catalog: Any = None,
    config: Config = None,
    columns: Columns = None,
    validation_days: Optional[float] = None,
    score_validation: bool = False,
) -> Evaluation:
    """Scores the models and baselines on a time split, as ``encore-train evaluate
    --holdout-from``: trained on the purchases before ``holdout_from`` (a string
    or a datetime), scored on those after. ``models`` restricts the rows
    (``popularity``, ``p_topfreq``, ``gp_topfreq``, ``item_knn``, ``als``,
    ``tifu_knn``, ``tifu_als``, ``ranker``, ``ease``); ``k`` the cut-offs.
    """
    path, text = _config_args(config)
    data = read_purchases(purchases, catalog, columns)
    ks = [k] if isinstance(k, int) else list(k)
    table, report_json = _encore.evaluate(
        data,
        _timestamp(holdout_from),
        ks,
        None if models is None else list(models),
        path,
        text,
        validation_days,
        score_validation,
    )
    report = json.loads(report_json)
    rows = [
        {"model": m["model"], "label": m["label"], **m["metrics"], "seconds": m["seconds"]}
        for m in report["models"]
    ]
    return Evaluation(table=table, report=report, metrics=pd.DataFrame(rows))
