"""The temporal-split evaluation: no peeking past the cut, slices, feed vs popularity."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.temporal_eval import (
    SLICES,
    TemporalData,
    TemporalResult,
    flat_metrics,
    run_temporal,
    temporal_data,
)
from retrieval.offline_pools import stage_events

MAX_USERS = 80


@pytest.fixture(scope="module")
def data(ml_100k) -> TemporalData:
    return temporal_data(ml_100k.events, "ml-100k", max_users=MAX_USERS, seed=3)


@pytest.fixture(scope="module")
def text(ml_100k) -> np.ndarray:
    """Genre-derived unit vectors (the sentence encoder is not needed for the protocol)."""
    rng = np.random.default_rng(0)
    vocab = sorted({g for gs in ml_100k.items["genres"] for g in gs})
    genres = np.array(
        [[g in gs for g in vocab] for gs in ml_100k.items["genres"]], dtype=np.float32
    )
    vecs = genres @ rng.standard_normal((len(vocab), 16)) + 0.1 * rng.standard_normal(
        (len(genres), 16)
    )
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def result(ml_100k, data: TemporalData, text: np.ndarray) -> TemporalResult:
    from ranking.ranker import RankerConfig
    from retrieval.offline import train_on_split
    from retrieval.training import TrainConfig
    from retrieval.two_tower import TwoTowerConfig

    trained, _ = train_on_split(
        data.split,
        ml_100k.items,
        ml_100k.users,
        text,
        TwoTowerConfig(dim=32, max_history=20, layers=1, heads=2),
        TrainConfig(max_epochs=1, random_negatives=64),
    )
    return run_temporal(
        ml_100k,
        text,
        data,
        trained.model,
        lambda_=0.85,
        baselines=("MostPopular", "ItemKNN"),
        baseline_grids={"ItemKNN": [{"neighbors": 50}]},
        ranker_config=RankerConfig(max_epochs=3),
    )


def test_no_stage_trains_on_its_targets_or_past_the_cut(ml_100k, data: TemporalData) -> None:
    split = data.split
    test, valid = split.stage("test"), split.stage("valid")
    # The sources' training events end before the cut; the test requests are at the cut.
    assert stage_events(test, split)["timestamp"].max() < data.cutoff
    assert (test.request_times == data.cutoff).all()
    # Every target pair happened at or after the cut and is not in the training events.
    assert test.targets.multiply(test.train.matrix()).nnz == 0
    rows, cols = test.targets.nonzero()
    pairs = set(zip(split.user_ids[rows].tolist(), split.item_ids[cols].tolist(), strict=True))
    future = ml_100k.events.loc[ml_100k.events["timestamp"] >= data.cutoff]
    assert pairs <= set(zip(future["user_id"], future["item_id"], strict=True))
    # The inner stage the ranker trains on lies wholly in the past, before its own targets.
    assert valid.targets.multiply(valid.train.matrix()).nnz == 0
    assert valid.train.events["timestamp"].max() < data.cutoff
    assert (valid.request_times[valid.users] < data.cutoff).all()
    assert (np.diff(valid.targets[valid.users].indptr) == 1).all()  # one target per request
    assert (np.diff(valid.train.matrix().indptr)[valid.users] > 0).all()  # with a history
    assert len(valid.users) == MAX_USERS and len(test.users) == MAX_USERS


def test_slices_partition_the_test_users_and_new_items_are_unseen(data: TemporalData) -> None:
    test = data.split.stage("test")
    users = data.slice_users
    warm, new = set(users["warm_users"].tolist()), set(users["new_users"].tolist())
    assert warm.isdisjoint(new) and warm | new == set(test.users.tolist())
    assert warm and new, "ml-100k has both warm and new users after the cut"
    past_counts = np.diff(test.train.matrix().indptr)
    assert (past_counts[users["warm_users"]] > 0).all()
    assert (past_counts[users["new_users"]] == 0).all()
    item_counts = np.asarray(test.train.matrix().sum(axis=0)).ravel()
    new_items = data.relevant["new_items"]
    assert new_items.nnz > 0 and (item_counts[new_items.indices] == 0).all()
    assert new_items.multiply(data.relevant["all"]).nnz == new_items.nnz
    assert set(users["new_items"].tolist()) <= set(test.users.tolist())


def test_feed_is_measured_next_to_popularity_per_slice(result: TemporalResult) -> None:
    feed, pop = result.metrics["Feed (ranker + rules)"], result.metrics["MostPopular"]
    for name in SLICES:
        for m in (feed[name], pop[name]):
            assert 0.0 <= m["ndcg@10"] <= 1.0 and 0.0 <= m["recall@10"] <= 1.0
    # Popularity counted on the past cannot put a never-seen item on the page.
    assert pop["new_items"]["recall@10"] == 0.0
    # Popularity is a real baseline here: on warm users it finds something.
    assert pop["warm_users"]["ndcg@10"] > 0.0
    assert feed["all"]["ndcg@10"] > 0.0
    # ItemKNN has no signal without history: its new-user cell is not reported.
    assert np.isnan(result.metrics["ItemKNN"]["new_users"]["ndcg@10"])
    # The slice "all" is the user-weighted mix of the two user slices.
    w, n = result.users("warm_users"), result.users("new_users")
    mixed = (feed["warm_users"]["ndcg@10"] * w + feed["new_users"]["ndcg@10"] * n) / (w + n)
    assert feed["all"]["ndcg@10"] == pytest.approx(mixed)
    text = result.markdown(0.85)
    assert "| users in slice |" in text and "request time = the cut" in text
    flat = flat_metrics(result)
    assert flat["temporal.users.all"] == MAX_USERS
    assert (
        flat["temporal.Feed (ranker + rules).warm_users.ndcg@10"] == feed["warm_users"]["ndcg@10"]
    )
