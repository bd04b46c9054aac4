"""Retrieval stage on LOO-full: each candidate source and the merged pool.

Sources are fitted on the stage's training events only (train for validation,
train+validation for test), restricted to the split's item set so the figures
are comparable with the baselines' full-catalog ranking. The merge quotas are
chosen on validation pool Recall@500 and applied once to the test stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.base import RequestContext
from retrieval.merge import MergeConfig, merge
from retrieval.offline_pools import SourceRun
from retrieval.quotas import POOL_SIZE, QUOTA_PRESETS

RECALL_KS = (10, 50, 100, 500)


def _hit_ranks(lists: list[list[int]], targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its list, or a large number when absent."""
    ranks = np.full(len(targets), np.iinfo(np.int64).max // 2, dtype=np.int64)
    for i, (items, target) in enumerate(zip(lists, targets, strict=True)):
        if target in items:
            ranks[i] = items.index(target)
    return ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    return {f"recall@{k}": float((ranks < k).mean()) for k in ks}


def merged_pools(
    run: SourceRun, ctxs: Sequence[RequestContext], config: MergeConfig
) -> list[list[int]]:
    names = list(run.lists)
    return [
        [c.item_id for c in merge({n: run.lists[n][i] for n in names}, config, ctx)]
        for i, ctx in enumerate(ctxs)
    ]


def choose_quotas(
    run: SourceRun, ctxs: Sequence[RequestContext], targets: np.ndarray
) -> tuple[str, dict[str, float]]:
    """The preset with the best validation pool Recall@500 (ties: first listed)."""
    scores = {}
    for preset, quotas in QUOTA_PRESETS.items():
        pools = merged_pools(run, ctxs, MergeConfig(pool_size=POOL_SIZE, quotas=quotas))
        scores[preset] = recall_at(_hit_ranks(pools, targets))["recall@500"]
    best = max(scores, key=lambda p: scores[p])
    return best, scores


def evaluate_pool(
    run: SourceRun,
    ctxs: Sequence[RequestContext],
    targets: np.ndarray,
    quotas: dict[str, int],
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    per_source = {}
    for name, lists in run.lists.items():
        ids = [[c.item_id for c in cands] for cands in lists]
        stats = recall_at(_hit_ranks(ids, targets))
        stats["median_ms"] = float(np.median(run.latency_ms[name]))
        per_source[name] = stats
    config = MergeConfig(pool_size=POOL_SIZE, quotas=quotas)
    pools = merged_pools(run, ctxs, config)
    pool = recall_at(_hit_ranks(pools, targets))
    pool["mean_size"] = float(np.mean([len(p) for p in pools]))
    return per_source, pool
