"""Retrieval stage on LOO-full: each candidate source and the merged pool.

Sources are fitted on the stage's training events only (train for validation,
train+validation for test), restricted to the split's item set so the figures
are comparable with the baselines' full-catalog ranking. The merge quotas are
chosen on validation pool Recall@500 and applied once to the test stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evaluation.splits import EvalStage, Split
from retrieval.base import Candidate, CandidateSource, RequestContext
from retrieval.merge import MergeConfig, merge

RECALL_KS = (10, 50, 100, 500)
POOL_SIZE = 500

# Quota presets tried on validation: the two-tower model and co-visitation carry
# the pool, content/trending/popularity keep a floor of long-tail and fresh items.
QUOTA_PRESETS: dict[str, dict[str, int]] = {
    "balanced": {"two_tower": 250, "covisit": 150, "content": 50, "trending": 25, "popularity": 25},
    "model-heavy": {
        "two_tower": 350,
        "covisit": 100,
        "content": 30,
        "trending": 10,
        "popularity": 10,
    },
    "graph-heavy": {
        "two_tower": 150,
        "covisit": 250,
        "content": 50,
        "trending": 25,
        "popularity": 25,
    },
}


def stage_events(stage: EvalStage, split: Split) -> pd.DataFrame:
    """The stage's training events with raw ids, as sources are fitted in production."""
    ev = stage.train.events
    return pd.DataFrame(
        {
            "user_id": split.user_ids[ev["user_idx"].to_numpy()],
            "item_id": split.item_ids[ev["item_idx"].to_numpy()],
            "timestamp": ev["timestamp"].to_numpy(),
        }
    )


def contexts(
    stage: EvalStage, split: Split, users: pd.DataFrame | None = None
) -> list[RequestContext]:
    """One request per evaluated user: chronological history, held-out event time."""
    demo = users.set_index("user_id") if users is not None and "age" in users else None
    seqs = stage.train.sequences()
    times = stage.train.events.groupby("user_idx", sort=True)["timestamp"].apply(np.asarray)
    out = []
    for u in stage.users:
        raw_user = int(split.user_ids[u])
        demographics = None
        if demo is not None and raw_user in demo.index:
            row = demo.loc[raw_user]
            demographics = {
                "gender": row["gender"],
                "age": int(row["age"]),
                "occupation": row["occupation"],
            }
        out.append(
            RequestContext(
                user_id=raw_user,
                history=split.item_ids[seqs[u]],
                timestamp=int(stage.request_times[u]),
                demographics=demographics,
                history_times=times.get(u, np.empty(0, dtype=np.int64)),
            )
        )
    return out


@dataclass
class SourceRun:
    """Every source's ranked list for every request of one stage."""

    lists: dict[str, list[list[Candidate]]]
    latency_ms: dict[str, list[float]] = field(default_factory=dict)


def run_sources(
    sources: Sequence[CandidateSource],
    ctxs: Sequence[RequestContext],
    k: int = POOL_SIZE,
    on_request: Callable[[], None] | None = None,
) -> SourceRun:
    run = SourceRun({s.name: [] for s in sources}, {s.name: [] for s in sources})
    for ctx in ctxs:
        for source in sources:
            start = time.perf_counter()
            run.lists[source.name].append(source.candidates(ctx, k))
            run.latency_ms[source.name].append((time.perf_counter() - start) * 1000)
        if on_request:
            on_request()
    return run


def _hit_ranks(lists: list[list[int]], targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its list, or a large number when absent."""
    ranks = np.full(len(targets), np.iinfo(np.int64).max // 2, dtype=np.int64)
    for i, (items, target) in enumerate(zip(lists, targets, strict=True)):
        if target in items:
            ranks[i] = items.index(target)
    return ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    return {f"recall@{k}": float((ranks < k).mean()) for k in ks}


def stage_targets(stage: EvalStage, split: Split) -> np.ndarray:
    return split.item_ids[stage.targets[stage.users].indices]


@dataclass
class RetrievalResult:
    sources: dict[str, dict[str, float]]  # source -> recall@K and median latency
    pool: dict[str, float]  # merged pool recall@K, size, mix
    quotas: dict[str, int]
    preset: str
    valid_pool_recall: dict[str, float]


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
