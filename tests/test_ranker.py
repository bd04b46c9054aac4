"""Ranker features and the multi-task network on hand-built pools."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.base import OBJECTIVES
from ranking.features import ItemTable, build_features, feature_names
from ranking.ranker import BlendWeights, Ranker, RankerConfig, train_ranker
from retrieval.base import RequestContext
from retrieval.merge import PooledCandidate

GENRES = 3


def _items() -> ItemTable:
    ids = np.array([10, 20, 30, 40], dtype=np.int64)
    genres = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    text = np.eye(4, dtype=np.float32)
    years = np.array([1990, 2000, np.nan, 2015], dtype=np.float32)
    return ItemTable(ids, genres, years, np.log1p(np.array([5, 1, 0, 9], np.float32)), text)


def _pool(*items: int) -> list[PooledCandidate]:
    return [
        PooledCandidate(i, ("covisit",), {"covisit": 1.0 / (r + 1)}, {"covisit": r})
        for r, i in enumerate(items)
    ]


def test_feature_matrix_matches_names_and_hand_values() -> None:
    ctx = RequestContext(user_id=1, history=np.array([10]), timestamp=1_262_304_000)  # 2010
    x = build_features(ctx, _pool(20, 30, 99), _items())
    names = feature_names(GENRES)
    assert x.shape == (3, len(names))
    col = {n: j for j, n in enumerate(names)}
    # item 20 shares the history's only genre, item 30 does not, 99 is unknown
    assert x[:, col["affinity_dot"]].tolist() == [1.0, 0.0, 0.0]
    assert x[0, col["rank_covisit"]] == pytest.approx(1.0)
    assert x[1, col["rank_covisit"]] == pytest.approx(0.5)
    assert x[0, col["age_years"]] == pytest.approx(10 / 30, abs=0.01)
    assert x[1, col["no_year"]] == 1.0 and x[2, col["no_year"]] == 1.0
    assert x[:, col["in_two_tower"]].sum() == 0.0


def test_blend_subtracts_regret() -> None:
    probs = np.array([[0.5, 0.4, 0.3, 0.9], [0.5, 0.4, 0.3, 0.0]], dtype=np.float32)
    blended = BlendWeights(1.0, 0.0, 0.0, 1.0).combine(probs)
    assert blended[1] > blended[0]


def test_ranker_learns_a_planted_signal() -> None:
    """Positives are the items sharing the user's genre: the net must find that."""
    rng = np.random.default_rng(0)
    items = _items()
    xs, ys, pools, ctxs = [], [], [], []
    for _ in range(300):
        liked = int(rng.choice([10, 30, 40]))
        ctx = RequestContext(None, np.array([liked]), 1_262_304_000)
        pool = _pool(*rng.permutation([20, 30, 40]).tolist())
        target = {10: 20, 30: 30, 40: 40}[liked]
        y = np.zeros((3, len(OBJECTIVES)), np.float32)
        y[[c.item_id for c in pool].index(target)] = [1, 1, 1, 0]
        xs.append(build_features(ctx, pool, items))
        ys.append(y)
        pools.append(pool)
        ctxs.append(ctx)
    x, y = np.vstack(xs), np.vstack(ys)
    result = train_ranker(
        x, y, lambda net: 0.0, RankerConfig(max_epochs=30, patience=30, batch_size=64)
    )
    ranker = Ranker(result.net, items, BlendWeights())
    ctx = RequestContext(None, np.array([40]), 1_262_304_000)
    ranked = ranker.rank(ctx, _pool(20, 30, 40))
    assert ranked[0].item_id == 40
    assert set(ranked[0].objectives) == set(OBJECTIVES)
    assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_numpy_runtime_computes_the_torch_networks_probabilities():
    """The serving runtime is the trained network, not an approximation of it: same
    probabilities as torch on inputs inside and outside the training range."""
    import torch

    from ranking.ranker import MultiTaskNet
    from ranking.runtime import NumpyNet

    torch.manual_seed(1)
    net = MultiTaskNet(12, RankerConfig(hidden=(16, 8), tower=4)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3)
        net.mean.normal_()
        net.std.uniform_(0.5, 2.0)
        net.lo.fill_(-1.0)
        net.hi.fill_(1.5)
    x = np.random.default_rng(0).normal(scale=2.0, size=(50, 12)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    got = NumpyNet.from_torch(net).probabilities(x)
    assert got.shape == (50, len(OBJECTIVES))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0.1  # a degenerate net would make the comparison vacuous


def test_cached_user_features_follow_the_history() -> None:
    """The ranker keeps each history's user-side features; a changed history (a new
    event) must get its own, never the previous page's."""
    from ranking.ranker import MultiTaskNet

    items = _items()
    ranker = Ranker(MultiTaskNet(len(feature_names(GENRES)), RankerConfig()), items, BlendWeights())
    pool = _pool(20, 30, 40)
    before = RequestContext(1, np.array([10]), 1_262_304_000)
    after = RequestContext(1, np.array([10, 40]), 1_262_304_000)
    for ctx in (before, after, before):
        np.testing.assert_array_equal(ranker.features(ctx, pool), build_features(ctx, pool, items))
    assert not np.array_equal(ranker.features(before, pool), ranker.features(after, pool))
    assert len(ranker._users) == 2
