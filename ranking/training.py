"""Production ranker training: labelled pools, the multi-task net, the blend choice.

Shared by `ranking.pipeline` (the shipped ranker) and the offline ranking report,
so the report measures exactly the procedure production runs. Labels come from
real retrieval outcomes: the held-out item is the positive among a request's
merged pool, every other pooled item a negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from catalog.metrics import metrics_from_ranks
from catalog.splits import EvalStage, Split
from catalog.tables import Catalog
from ranking.base import OBJECTIVES
from ranking.features import ItemTable, build_features
from ranking.ranker import BlendWeights, MultiTaskNet, RankerConfig, train_ranker
from retrieval.offline_pools import StagePools

MISS = 10**9
BLEND_GRID = (
    BlendWeights(1.0, 0.0, 0.0, 0.0),
    BlendWeights(1.0, 0.3, 0.3, 0.3),
    BlendWeights(1.0, 0.0, 0.5, 0.5),
    BlendWeights(1.0, 0.5, 1.0, 0.5),
)


def item_table(catalog: Catalog, split: Split, stage: EvalStage, text: np.ndarray) -> ItemTable:
    """Static arrays over the split's items; popularity counted on the stage's training data."""
    frame = catalog.items.set_index("item_id").loc[split.item_ids]
    vocab = sorted({g for gs in catalog.items["genres"] for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    genres = np.zeros((len(split.item_ids), len(vocab)), dtype=np.float32)
    for i, gs in enumerate(frame["genres"]):
        for g in gs:
            genres[i, col[g]] = 1.0
    years = frame["year"].astype("Float64").to_numpy(dtype=np.float32, na_value=np.nan)
    counts = np.asarray(stage.train.matrix().sum(axis=0)).ravel()
    rows = pd.Index(catalog.items["item_id"]).get_indexer(split.item_ids)
    return ItemTable(split.item_ids, genres, years, np.log1p(counts).astype(np.float32), text[rows])


def labelled(
    data: StagePools, items: ItemTable, users: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels (n, 4), request index) for the given request indices."""
    xs, ys, groups = [], [], []
    for u in users:
        pool = data.pools[u]
        if not pool:
            continue
        x = build_features(data.ctxs[u], pool, items)
        y = np.zeros((len(pool), len(OBJECTIVES)), dtype=np.float32)
        hit = [i for i, c in enumerate(pool) if c.item_id == data.targets[u]]
        if hit:
            r = data.ratings[u]
            y[hit[0]] = [1.0, float(r >= 3), float(r >= 4), float(r <= 2)]
        xs.append(x)
        ys.append(y)
        groups.append(np.full(len(pool), u))
    return np.vstack(xs), np.vstack(ys), np.concatenate(groups)


def target_ranks(scores_by_request: list[np.ndarray], data: StagePools, users: Sequence[int]):
    """0-based rank of each request's target inside its ranked pool (MISS when absent)."""
    ranks = []
    for u, scores in zip(users, scores_by_request, strict=True):
        ids = np.array([c.item_id for c in data.pools[u]])
        where = np.flatnonzero(ids == data.targets[u])
        if where.size == 0:
            ranks.append(MISS)
            continue
        t = scores[where[0]]
        ranks.append(int((scores > t).sum() + (scores == t).sum() - 1))
    return np.array(ranks)


def request_scores(
    net: MultiTaskNet, x: np.ndarray, groups: np.ndarray, users: Sequence[int], blend: BlendWeights
) -> tuple[list[np.ndarray], np.ndarray]:
    import torch

    with torch.inference_mode():
        probs = torch.sigmoid(net(torch.from_numpy(x))).numpy()
    blended = blend.combine(probs)
    return [blended[groups == u] for u in users], probs


@dataclass
class FittedRanker:
    net: MultiTaskNet
    blend: BlendWeights
    best_epoch: int
    seconds: float
    hold_users: list[int]
    hold_scores: list[np.ndarray]
    hold_ndcg10: float


def fit_ranker(
    pools: StagePools, items: ItemTable, config: RankerConfig | None = None, seed: int = 42
) -> FittedRanker:
    """Train on 80% of the requests; the other 20% early-stop it and pick the blend."""
    rng = np.random.default_rng(seed)
    users = rng.permutation(len(pools.ctxs))
    n_hold = max(1, len(users) // 5)
    hold, fit_users = np.sort(users[:n_hold]), np.sort(users[n_hold:])
    x_fit, y_fit, _ = labelled(pools, items, fit_users)
    x_hold, _, g_hold = labelled(pools, items, hold)
    hold_users = [int(u) for u in hold if pools.pools[u]]

    def ndcg_on_hold(net: MultiTaskNet, blend: BlendWeights = BLEND_GRID[0]) -> float:
        scores, _ = request_scores(net, x_hold, g_hold, hold_users, blend)
        return metrics_from_ranks(target_ranks(scores, pools, hold_users), ks=(10,))["ndcg@10"]

    trained = train_ranker(x_fit, y_fit, ndcg_on_hold, config)
    blend = max(BLEND_GRID, key=lambda b: ndcg_on_hold(trained.net, b))
    hold_scores, _ = request_scores(trained.net, x_hold, g_hold, hold_users, blend)
    return FittedRanker(
        trained.net,
        blend,
        trained.best_epoch,
        trained.seconds,
        hold_users,
        hold_scores,
        ndcg_on_hold(trained.net, blend),
    )
