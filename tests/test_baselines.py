"""Baselines: closed forms checked against first principles, behaviour on planted structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from catalog.splits import Interactions, loo_full
from evaluation.baselines import EASE, ALSMatrixFactorization, ItemKNN, MostPopular
from evaluation.runner import evaluate, tune_and_test


def _interactions(matrix: np.ndarray) -> Interactions:
    users, items = np.nonzero(matrix)
    events = pd.DataFrame({"user_idx": users, "item_idx": items, "rating": 4.0, "timestamp": 0})
    return Interactions(events, *matrix.shape)


def test_ease_matches_per_item_ridge_regression_with_zero_diagonal() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((40, 8)) < 0.35).astype(np.float64)
    lam = 5.0
    model = EASE(l2=lam)
    model.fit(_interactions(x))
    b = model._b
    assert b is not None and np.allclose(np.diag(b), 0.0)
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + lam * np.eye(len(others)), xo.T @ x[:, j])
        assert np.allclose(b[others, j], ridge, atol=1e-4)


def test_itemknn_is_cosine_and_keeps_top_neighbours() -> None:
    x = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=np.float64)
    full = ItemKNN(neighbors=10)
    full.fit(_interactions(x))
    # items 0 and 1: co-occur twice, |0| = 3, |1| = 2 -> 2 / sqrt(6)
    assert full._sim[0, 1] == pytest.approx(2 / np.sqrt(6), rel=1e-5)
    assert full._sim[0, 0] == 0.0
    pruned = ItemKNN(neighbors=1)
    pruned.fit(_interactions(x))
    assert ((pruned._sim > 0).sum(axis=0) <= 1).all()


def _two_clusters(seed: int = 0) -> pd.DataFrame:
    """40 users; the first 20 watch only items 0-9, the rest only items 10-19 (rank 2)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(40):
        pool = np.arange(10) + (10 if user >= 20 else 0)
        for t, item in enumerate(rng.choice(pool, size=6, replace=False)):
            rows.append((user, int(item), 4.0, t))
    # a few users on the minority cluster make a globally popular item there
    rows += [(40 + u, 0, 4.0, 0) for u in range(3)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.mark.parametrize(
    "model",
    [ItemKNN(neighbors=20), EASE(l2=1.0), ALSMatrixFactorization(factors=2, alpha=5.0)],
    ids=lambda m: m.name,
)
def test_personalized_baselines_find_the_planted_clusters(model) -> None:
    split = loo_full(_two_clusters(), "toy", k=1)
    stage = split.stage("test")
    stage = dataclasses.replace(stage, users=np.arange(40))
    model.fit(stage.train)
    popular = MostPopular()
    popular.fit(stage.train)
    personal_recall = evaluate(model, stage)["recall@5"]
    assert personal_recall >= 0.8
    assert personal_recall > evaluate(popular, stage)["recall@5"]


@pytest.mark.slow
def test_ease_beats_popularity_on_loo_full(loo_small) -> None:
    ease = tune_and_test(EASE, [{"l2": 50.0}, {"l2": 2000.0}], loo_small)
    pop = tune_and_test(MostPopular, [{}], loo_small)
    chosen = max(ease.tuning, key=lambda t: t["ndcg@10"])
    assert ease.params == chosen["params"]
    assert ease.valid["ndcg@10"] == pytest.approx(chosen["ndcg@10"])
    assert ease.test["ndcg@10"] > 1.5 * pop.test["ndcg@10"]
    assert ease.test["coverage@10"] > pop.test["coverage@10"]
