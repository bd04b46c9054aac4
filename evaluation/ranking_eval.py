"""Ranking stage on LOO-full: the ranker trained on validation pools, tested on test pools.

Training data are real retrieval outcomes: for each user, the validation-stage
pool (sources fitted on train events) with the validation item as the positive
and every other retrieved item as a negative. 20% of users are held out from the
ranker's training to early-stop it and choose the blend weights. The test stage
refits the sources on train+validation events, builds each user's pool, and the
ranker orders it; a test item missing from the pool counts as a miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from catalog.tables import Catalog
from evaluation.metrics import (
    binary_auc,
    catalog_coverage,
    intra_list_diversity,
    metrics_from_ranks,
    novelty,
)
from evaluation.splits import EvalStage, Split
from ranking.base import OBJECTIVES
from ranking.features import ItemTable, build_features
from ranking.ranker import BlendWeights, MultiTaskNet, RankerConfig, train_ranker
from retrieval.base import RequestContext
from retrieval.merge import MergeConfig, PooledCandidate, merge

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


@dataclass
class StagePools:
    ctxs: list[RequestContext]
    pools: list[list[PooledCandidate]]
    targets: np.ndarray  # raw item id per request
    ratings: np.ndarray  # the target's rating


def stage_pools(
    lists: dict[str, list[list]],
    ctxs: Sequence[RequestContext],
    targets: np.ndarray,
    ratings: np.ndarray,
    quotas: dict[str, int],
    pool_size: int = 500,
) -> StagePools:
    config = MergeConfig(pool_size=pool_size, quotas=quotas)
    pools = [
        merge({name: lists[name][i] for name in lists}, config, ctx) for i, ctx in enumerate(ctxs)
    ]
    return StagePools(list(ctxs), pools, targets, ratings)


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
class RankingOutcome:
    metrics: dict[str, float]
    blend: BlendWeights
    best_epoch: int
    train_seconds: float
    top10: np.ndarray  # (users, 10) split item indices of the final lists
    net: MultiTaskNet
    test_scores: list[np.ndarray]  # blended score per pool item, per test request
    hold_users: list[int]  # validation requests held out from the ranker's training
    hold_scores: list[np.ndarray]


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


def run_ranker(
    valid: StagePools,
    test: StagePools,
    valid_items: ItemTable,
    test_items: ItemTable,
    split: Split,
    genre_features,
    n_users_train: int,
    config: RankerConfig | None = None,
    seed: int = 42,
) -> RankingOutcome:
    fitted = fit_ranker(valid, valid_items, config, seed)
    blend = fitted.blend
    test_users = list(range(len(test.ctxs)))
    x_test, y_test, g_test = labelled(test, test_items, test_users)
    scores, probs = request_scores(fitted.net, x_test, g_test, test_users, blend)
    ranks = target_ranks(scores, test, test_users)
    metrics = metrics_from_ranks(ranks, ks=(1, 5, 10, 20, 50))
    for j, name in enumerate(OBJECTIVES):
        metrics[f"auc_{name}"] = binary_auc(y_test[:, j], probs[:, j])
    index_of = {int(item): i for i, item in enumerate(split.item_ids)}
    top10 = np.array(
        [
            [index_of[test.pools[u][i].item_id] for i in np.argsort(-s, kind="stable")[:10]]
            for u, s in zip(test_users, scores, strict=True)
        ]
    )
    popularity = np.expm1(test_items.log_popularity)
    metrics["coverage@10"] = catalog_coverage(top10, len(split.item_ids))
    metrics["novelty@10"] = novelty(top10, popularity, n_users_train)
    metrics["ild@10"] = intra_list_diversity(top10, genre_features)
    return RankingOutcome(
        metrics,
        blend,
        fitted.best_epoch,
        fitted.seconds,
        top10,
        fitted.net,
        scores,
        fitted.hold_users,
        fitted.hold_scores,
    )


LAMBDA_GRID = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.5, 0.3)


@dataclass
class DiversityPoint:
    lambda_: float
    ndcg10: float
    recall10: float
    ild10: float
    coverage10: float


def diversity_sweep(
    scores: list[np.ndarray],
    data: StagePools,
    users: Sequence[int],
    meta,
    split: Split,
    genre_features,
    lambdas: Sequence[float] = LAMBDA_GRID,
    page_size: int = 10,
) -> list[DiversityPoint]:
    """Accuracy and diversity of the top-10 after the MMR rule, for each lambda."""
    from ranking.base import FeedContext, RankedItem
    from ranking.rules import Diversity, DiversityConfig

    index_of = {int(item): i for i, item in enumerate(split.item_ids)}
    points = []
    for lam in lambdas:
        rule = Diversity(meta, DiversityConfig(lambda_=lam))
        ranks, tops = [], []
        for u, s in zip(users, scores, strict=True):
            order = np.argsort(-s, kind="stable")
            ranked = [RankedItem(data.pools[u][i].item_id, float(s[i])) for i in order]
            out = rule.apply(FeedContext(data.ctxs[u], page_size=page_size), ranked)
            ids = [r.item_id for r in out[:page_size]]
            tops.append([index_of[i] for i in ids])
            ranks.append(ids.index(data.targets[u]) if data.targets[u] in ids else MISS)
        top = np.array(tops)
        m = metrics_from_ranks(np.array(ranks), ks=(10,))
        points.append(
            DiversityPoint(
                lam,
                m["ndcg@10"],
                m["recall@10"],
                intra_list_diversity(top, genre_features),
                catalog_coverage(top, len(split.item_ids)),
            )
        )
    return points
