"""Run candidate sources concurrently and merge them into one tagged pool.

Why round-robin by rank with per-source quotas: scores from different sources are
not comparable (cosine, counts, visit frequencies), but ranks are. Interleaving
rank by rank lets every source place its best items early, the quotas keep the
pool's mix predictable (and tunable on validation), and an item returned by
several sources is kept once and tagged with all of them, which the ranker later
uses as a feature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, TimeoutError, wait
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np

from retrieval.base import Candidate, CandidateSource, RequestContext

log = logging.getLogger("marquee.retrieval")


@dataclass(frozen=True)
class PooledCandidate:
    item_id: int
    sources: tuple[str, ...]
    scores: dict[str, float]  # each source's own score
    ranks: dict[str, int]  # each source's 0-based rank


@dataclass(frozen=True)
class Pool:
    """A merged pool as arrays, so the ranker reads it without one object per candidate.

    Row i is the i-th pooled item; column j is source `sources[j]`; a rank of -1 means
    the source did not return the item (its score is then 0).
    """

    sources: tuple[str, ...]
    item_ids: np.ndarray  # (n,) int64, pool order
    ranks: np.ndarray  # (n, S) int32, 0-based rank within each source, -1 if absent
    scores: np.ndarray  # (n, S) float32, each source's own score

    def __len__(self) -> int:
        return int(self.item_ids.size)

    def candidate(self, row: int) -> PooledCandidate:
        ranks = self.ranks[row].tolist()
        cols = sorted((r, c) for c, r in enumerate(ranks) if r >= 0)  # best rank first
        names = tuple(self.sources[c] for _, c in cols)
        return PooledCandidate(
            int(self.item_ids[row]),
            names,
            {self.sources[c]: float(self.scores[row, c]) for _, c in cols},
            {self.sources[c]: r for r, c in cols},
        )

    def candidates(self) -> list[PooledCandidate]:
        return [self.candidate(i) for i in range(len(self))]

    def source_sets(self, rows: Sequence[int]) -> list[tuple[str, ...]]:
        """Sources of each row in column order; cheap (one lookup per row) for a page."""
        bits = (self.ranks[np.asarray(rows, dtype=np.int64)] >= 0) @ (
            1 << np.arange(len(self.sources))
        )
        table: dict[int, tuple[str, ...]] = {}
        out = []
        for mask in bits.tolist():
            if mask not in table:
                table[mask] = tuple(n for j, n in enumerate(self.sources) if mask >> j & 1)
            out.append(table[mask])
        return out


@dataclass(frozen=True)
class MergeConfig:
    pool_size: int = 500
    quotas: dict[str, int] = field(default_factory=dict)  # source -> max slots; missing = no cap
    overfetch: float = 1.5  # ask each source for quota * overfetch to survive dedup
    # The request's deadline for its sources: one still running then is dropped from the
    # pool at the deadline (it finishes in the background; its result is discarded).
    timeout_s: float = 0.25


@dataclass
class MergeResult:
    pool: Pool
    latency_ms: dict[str, float]  # per source that ran for this request
    failed: list[str]
    lists: dict[str, SourceList] = field(default_factory=dict)  # every source's list

    @cached_property
    def candidates(self) -> list[PooledCandidate]:
        return self.pool.candidates()


class CandidateMerger:
    def __init__(
        self,
        sources: Sequence[CandidateSource],
        config: MergeConfig | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        self.sources = list(sources)
        self.config = config or MergeConfig()
        self._executor = executor or ThreadPoolExecutor(
            max_workers=max(1, len(self.sources)), thread_name_prefix="source"
        )

    def _fetch_size(self, name: str) -> int:
        quota = self.config.quotas.get(name, self.config.pool_size)
        return max(1, round(min(quota, self.config.pool_size) * self.config.overfetch))

    def _timed(self, source: CandidateSource, ctx: RequestContext) -> tuple[list[Candidate], float]:
        start = time.perf_counter()
        out = source.candidates(ctx, self._fetch_size(source.name))
        return out, (time.perf_counter() - start) * 1000

    def gather(
        self,
        ctx: RequestContext,
        ready: Mapping[str, SourceList] | None = None,
        pool_size: int | None = None,
    ) -> MergeResult:
        """Run the sources (except those whose list is `ready`, e.g. computed nearline), merge.

        Why two kinds: a source marked `bounded` (an in-memory walk down a presorted list,
        well under a millisecond) runs inline on the calling thread, because a hand-off to
        the pool would cost more than the work. Every other source runs on the pool, all
        at once, and whatever has not finished by the deadline is dropped then, so a slow
        source costs the request at most `timeout_s`, never its own full time.

        `pool_size` below the configured one merges only the pool's head: the merge takes
        items in a fixed order and stops when full, so the result is exactly the first
        `pool_size` items of the full pool, for a fraction of the merge's work. Sources
        are still asked for their configured depth.
        """
        ready = dict(ready or {})
        todo = [s for s in self.sources if s.name not in ready]
        deadline = time.perf_counter() + self.config.timeout_s
        futures = {
            self._executor.submit(self._timed, s, ctx): s.name
            for s in todo
            if not getattr(s, "bounded", False)
        }
        lists: dict[str, SourceList] = dict(ready)
        latency: dict[str, float] = {}
        failed: list[str] = []
        for source in todo:
            if getattr(source, "bounded", False):
                try:
                    lists[source.name], latency[source.name] = self._timed(source, ctx)
                except Exception as exc:  # a broken source must not break the feed
                    failed.append(source.name)
                    log.warning("candidate source %s failed: %s", source.name, exc)
        done, _ = wait(futures, timeout=max(0.0, deadline - time.perf_counter()))
        for future, name in futures.items():
            if future not in done:
                future.cancel()
                failed.append(name)
                log.warning("candidate source %s timed out", name)
                continue
            try:
                lists[name], latency[name] = future.result(timeout=0)
            except (TimeoutError, Exception) as exc:  # a broken source must not break the feed
                failed.append(name)
                log.warning("candidate source %s failed: %s", name, exc)
        failed.sort(key=[s.name for s in self.sources].index)
        return self._result(ctx, lists, latency, failed, pool_size)

    def _result(self, ctx, lists, latency, failed, pool_size=None) -> MergeResult:
        ordered = {s.name: lists[s.name] for s in self.sources if s.name in lists}
        config = self.config
        if pool_size is not None and pool_size < config.pool_size:
            config = replace(config, pool_size=pool_size)
        return MergeResult(merge_pool(ordered, config, ctx), latency, failed, ordered)

    def candidates(self, ctx: RequestContext) -> list[PooledCandidate]:
        return self.gather(ctx).candidates


def merge(
    lists: dict[str, list[Candidate]], config: MergeConfig, ctx: RequestContext | None = None
) -> list[PooledCandidate]:
    """`merge_pool` as tagged candidates; sources of each ordered by their rank."""
    return merge_pool(lists, config, ctx).candidates()


class RankedIds(NamedTuple):
    """One source's ranked list as arrays, e.g. read back from the feature store: merging
    it needs no object per candidate."""

    ids: np.ndarray  # int64, best first
    scores: np.ndarray


SourceList = list[Candidate] | RankedIds


def _as_arrays(cands: SourceList) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(cands, RankedIds):
        return np.asarray(cands.ids, np.int64), np.asarray(cands.scores, np.float64)
    n = len(cands)
    return (
        np.fromiter((c.item_id for c in cands), np.int64, n),
        np.fromiter((c.score for c in cands), np.float64, n),
    )


def merge_pool(
    lists: Mapping[str, SourceList], config: MergeConfig, ctx: RequestContext | None = None
) -> Pool:
    """Interleave ranked lists by rank under quotas, dedup, then fill up from leftovers.

    Each pooled item is tagged with every source that returned it, at the best rank
    that source gave it, with that source's score.
    """
    seen = ctx.seen() if ctx is not None else frozenset()
    names = list(lists)
    n_src = len(names)
    arrays = [_as_arrays(lists[n]) for n in names]
    ids, scores = [a[0] for a in arrays], [a[1] for a in arrays]
    all_ids = np.concatenate([np.empty(0, np.int64), *ids])
    all_pos = np.concatenate(
        [np.empty(0, np.int64), *(np.full(len(a), p) for p, a in enumerate(ids))]
    )
    all_rank = np.concatenate([np.empty(0, np.int64), *(np.arange(len(a)) for a in ids)])
    # every candidate once, in interleaving order: rank 0 of each source, then rank 1, ...
    order = np.argsort(all_rank * max(n_src, 1) + all_pos, kind="stable")
    sequence = list(zip(all_ids[order].tolist(), all_pos[order].tolist(), strict=True))
    quotas = [config.quotas.get(name, config.pool_size) for name in names]
    used = [0] * n_src
    pooled: list[int] = []
    taken: set[int] = set()
    for respect_quota in (True, False):
        for item, position in sequence:
            if len(pooled) >= config.pool_size:
                break
            if item in taken or item in seen:
                continue
            if respect_quota and used[position] >= quotas[position]:
                continue
            taken.add(item)
            pooled.append(item)
            used[position] += 1
    item_ids = np.array(pooled, dtype=np.int64)
    ranks = np.full((len(pooled), n_src), -1, dtype=np.int32)
    values = np.zeros((len(pooled), n_src), dtype=np.float32)
    sorter = np.argsort(item_ids, kind="stable")
    sorted_ids = item_ids[sorter]
    for p in range(n_src if pooled else 0):
        _, first = np.unique(ids[p], return_index=True)  # a repeated item keeps its best rank
        found = np.minimum(np.searchsorted(sorted_ids, ids[p][first]), len(pooled) - 1)
        hit = sorted_ids[found] == ids[p][first]
        rows = sorter[found[hit]]
        ranks[rows, p] = first[hit]
        values[rows, p] = scores[p][first[hit]]
    return Pool(tuple(names), item_ids, ranks, values)
