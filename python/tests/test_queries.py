"""Answers as DataFrames with stable dtypes, and queries that release the GIL."""

import threading
import time

import pandas as pd
import pandas.api.types as t

import encore


def test_recommend_columns_and_dtypes(model):
    ids = ["17850", "13047", "no such customer"]
    df = model.recommend(ids, k=5)
    assert list(df.columns) == ["customer_id", "rank", "item_id", "score"]
    assert t.is_string_dtype(df["customer_id"]) and t.is_string_dtype(df["item_id"])
    assert df["rank"].dtype == "int64" and df["score"].dtype == "float32"
    assert df.groupby("customer_id", sort=False)["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    # Scores are best first within each customer.
    for _, g in df.groupby("customer_id"):
        assert g["score"].is_monotonic_decreasing


def test_recommend_filters(model):
    base = model.recommend(["17850"], k=5)
    top = base["item_id"].iloc[0]
    excluded = model.recommend(["17850"], k=5, exclude=[top])
    assert top not in set(excluded["item_id"]) and len(excluded) == 5
    catalog = pd.read_csv(__import__("conftest").CATALOG, dtype=str)
    category = catalog["category"].value_counts().index[0]
    in_category = set(catalog.loc[catalog["category"] == category, "item_id"])
    listed = model.recommend(["17850"], k=5, category=category)
    assert len(listed) > 0 and set(listed["item_id"]) <= in_category


def test_item_lists_and_basket(model):
    sim = model.similar(["85123A", "unknown"], k=3)
    assert list(sim.columns) == ["item_id", "rank", "similar_item_id", "score"]
    assert set(sim["item_id"]) == {"85123A"} and len(sim) == 3
    bt = model.bought_together(["85123A"], k=3)
    assert len(bt) == 3 and "85123A" not in set(bt["similar_item_id"])
    basket = model.basket(["85123A", "71053"], k=4)
    assert list(basket.columns) == ["rank", "item_id", "score"] and len(basket) == 4
    assert not basket.attrs["fallback"]
    assert not {"85123A", "71053"} & set(basket["item_id"])
    assert model.basket(["unknown"], k=4).attrs["fallback"]


def test_customer_frames(model):
    c = model.customers()
    assert c["customer_id"].is_unique and len(c) > 4000
    assert t.is_datetime64_any_dtype(c["first_purchase"])
    assert t.is_datetime64_any_dtype(c["predicted_next_purchase_date"])
    assert c["p_alive"].dtype == "float64" and c["orders"].dtype == "uint32"
    assert set(c["lifecycle_stage"]) <= {"new", "active", "dormant", "at_risk", "lost"}
    nxt = model.next_purchase(["17850", "no such customer"], k=4)
    assert set(nxt["customer_id"]) == {"17850"} and len(nxt) == 4
    assert set(nxt["reason"]) <= {"replenishment", "recommendation"}
    again = model.buy_again(["17850"], k=3)
    assert list(again["rank"]) == [1, 2, 3] and t.is_datetime64_any_dtype(again["due_date"])
    risk = c["churn_risk"]
    assert risk.dtype == "float64" and risk.notna().all() and risk.between(0, 1).all()
    aud = model.audience(k=2, limit=10)
    assert aud["customer_id"].nunique() == 10
    by_id = c.set_index("customer_id")
    calm = model.audience(k=2, max_churn_risk=0.5)
    assert len(calm) > 0
    assert (by_id.loc[calm["customer_id"].unique(), "churn_risk"] <= 0.5).all()
    alive = model.audience(k=2, min_p_alive=0.5)
    assert len(alive) > 0
    assert (by_id.loc[alive["customer_id"].unique(), "p_alive"] >= 0.5).all()
    members = c.set_index("customer_id").loc[aud["customer_id"].unique()]
    assert set(members["lifecycle_stage"]) <= {"dormant", "at_risk"}
    k = model.kpis()
    assert int(k["overall"]["buyers"].iloc[0]) > 0
    assert k["stage_counts"]["customers"].sum() == len(c)


def test_recommend_releases_the_gil(model):
    """A Python thread keeps counting while a long recommend runs in Rust."""
    ids = list(model.customers()["customer_id"]) * 20
    counted = 0
    stop = threading.Event()

    def count():
        nonlocal counted
        while not stop.is_set():
            counted += 1

    thread = threading.Thread(target=count)
    thread.start()
    try:
        time.sleep(0.05)
        before = counted
        started = time.perf_counter()
        # The native call alone: no Python code of ours runs during it.
        model._native.recommend(ids, 10, True, None, None)
        seconds = time.perf_counter() - started
        during = counted - before
    finally:
        stop.set()
        thread.join()
    assert seconds > 0.05, f"too short to tell ({seconds:.3f}s)"
    # With the GIL held the counter could only move at the call's edges.
    assert during > 10_000, f"{during} increments in {seconds:.2f}s"


def test_factors_and_matrix_follow_the_id_order(model):
    import numpy as np

    users, items = model.als_factors()
    n_customers, n_items = model.shape
    assert users.shape[0] == n_customers == len(model.customer_ids)
    assert items.shape[0] == n_items == len(model.item_ids)
    assert users.dtype == np.float32 and users.shape[1] == items.shape[1]
    indptr, indices, values = model.purchase_matrix()
    assert len(indptr) == n_customers + 1 and indptr[-1] == len(indices) == len(values)
    # The ALS list of a customer is the best dot products among items not bought.
    c = model.customer_ids.index("17850")
    scores = items @ users[c]
    scores[indices[indptr[c] : indptr[c + 1]]] = -np.inf
    best = [model.item_ids[i] for i in np.argsort(-scores, kind="stable")[:5]]
    listed = model.recommend(["17850"], k=5)
    assert listed["item_id"].tolist() == best
