"""Replay candidate sources over a split and merge each request's pool.

Production ranker training and the offline reports both need the same thing:
sources fitted on a stage's training events, one request per held-out user, and
the merged pool each request would get. Keeping it here (not in evaluation/)
lets training use it without depending on the evaluation stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from catalog.splits import EvalStage, Split
from catalog.tables import Catalog
from retrieval.base import Candidate, CandidateSource, RequestContext
from retrieval.features import UserFeatures
from retrieval.merge import MergeConfig, PooledCandidate, merge
from retrieval.quotas import POOL_SIZE
from retrieval.sources import ContentSource, CoVisitationSource, PopularitySource, TrendingSource
from retrieval.sources.two_tower import TwoTowerSource
from retrieval.two_tower import TwoTowerModel


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


def build_sources(
    stage: EvalStage,
    split: Split,
    catalog: Catalog,
    text: np.ndarray,
    model: TwoTowerModel,
    max_gap_bucket: int | None = None,
) -> list[CandidateSource]:
    """The feed's five sources fitted on the stage's training events (`max_gap_bucket`:
    the served two-tower's request-gap cap, from its bundle)."""
    events = stage_events(stage, split)
    rows = pd.Index(catalog.items["item_id"]).get_indexer(split.item_ids)
    occupations = UserFeatures.build(catalog.users, split.user_ids).occupation_vocab
    return [
        TwoTowerSource(
            model, split.item_ids, occupation_vocab=occupations, max_gap_bucket=max_gap_bucket
        ),
        CoVisitationSource.fit(events, split.item_ids),
        ContentSource(split.item_ids, text[rows]),
        TrendingSource.fit(events, split.item_ids),
        PopularitySource.fit(events, split.item_ids),
    ]


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


def stage_targets(stage: EvalStage, split: Split) -> np.ndarray:
    return split.item_ids[stage.targets[stage.users].indices]


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
