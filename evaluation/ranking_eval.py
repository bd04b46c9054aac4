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

from catalog.metrics import (
    binary_auc,
    catalog_coverage,
    intra_list_diversity,
    metrics_from_ranks,
    novelty,
)
from catalog.splits import Split
from ranking.base import OBJECTIVES
from ranking.features import ItemTable
from ranking.ranker import BlendWeights, MultiTaskNet, RankerConfig
from ranking.rules import Exploration, feed_rules
from ranking.training import MISS, fit_ranker, labelled, request_scores, target_ranks
from retrieval.offline_pools import StagePools


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


def feed_pages(
    scores: list[np.ndarray],
    data: StagePools,
    users: Sequence[int],
    meta,
    lambda_: float,
    page_size: int = 10,
    exploration: Exploration | None = None,
) -> list[list[int]]:
    """The feed's first page (raw item ids) per request: the ranker's order, then the
    serving rules in their serving order (ranking.rules.feed: filters, freshness at the
    request's time, MMR diversity at `lambda_`, and `exploration` when given: seeded per
    user and request time, so a rerun draws the same slots)."""
    from ranking.base import FeedContext, RankedItem

    rules = feed_rules(meta, lambda_, exploration)
    pages = []
    for u, s in zip(users, scores, strict=True):
        order = np.argsort(-s, kind="stable")
        ranked = [RankedItem(data.pools[u][i].item_id, float(s[i])) for i in order]
        out = rules.run(FeedContext(data.ctxs[u], page_size=page_size), ranked).items
        pages.append([r.item_id for r in out[:page_size]])
    return pages


def diversity_sweep(
    scores: list[np.ndarray],
    data: StagePools,
    users: Sequence[int],
    meta,
    split: Split,
    genre_features,
    lambdas: Sequence[float] = LAMBDA_GRID,
    page_size: int = 10,
    exploration: Exploration | None = None,
) -> list[DiversityPoint]:
    """Accuracy and diversity of the top-10 after the feed's rules, for each MMR lambda."""
    index_of = {int(item): i for i, item in enumerate(split.item_ids)}
    points = []
    for lam in lambdas:
        pages = feed_pages(scores, data, users, meta, lam, page_size, exploration)
        ranks, tops = [], []
        for u, ids in zip(users, pages, strict=True):
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
