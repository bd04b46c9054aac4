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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, TimeoutError, wait
from dataclasses import dataclass, field

from retrieval.base import Candidate, CandidateSource, RequestContext

log = logging.getLogger("marquee.retrieval")


@dataclass(frozen=True)
class PooledCandidate:
    item_id: int
    sources: tuple[str, ...]
    scores: dict[str, float]  # each source's own score
    ranks: dict[str, int]  # each source's 0-based rank


@dataclass(frozen=True)
class MergeConfig:
    pool_size: int = 500
    quotas: dict[str, int] = field(default_factory=dict)  # source -> max slots; missing = no cap
    overfetch: float = 1.5  # ask each source for quota * overfetch to survive dedup
    timeout_s: float = 0.25  # a source slower than this is skipped for the request


@dataclass
class MergeResult:
    candidates: list[PooledCandidate]
    latency_ms: dict[str, float]  # per source
    failed: list[str]


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

    def gather(self, ctx: RequestContext) -> MergeResult:
        futures = {self._executor.submit(self._timed, s, ctx): s.name for s in self.sources}
        done, _ = wait(futures, timeout=self.config.timeout_s)
        lists: dict[str, list[Candidate]] = {}
        latency: dict[str, float] = {}
        failed: list[str] = []
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
        ordered = {s.name: lists[s.name] for s in self.sources if s.name in lists}
        return MergeResult(merge(ordered, self.config, ctx), latency, failed)

    def candidates(self, ctx: RequestContext) -> list[PooledCandidate]:
        return self.gather(ctx).candidates


def merge(
    lists: dict[str, list[Candidate]], config: MergeConfig, ctx: RequestContext | None = None
) -> list[PooledCandidate]:
    """Interleave ranked lists by rank under quotas, dedup, then fill up from leftovers."""
    seen = ctx.seen() if ctx is not None else frozenset()
    pool: dict[int, tuple[list[str], dict[str, float], dict[str, int]]] = {}
    order: list[int] = []
    used = dict.fromkeys(lists, 0)

    def tag(item: int, name: str, cand: Candidate, rank: int) -> None:
        names, scores, ranks = pool[item]
        if name not in scores:
            names.append(name)
            scores[name] = cand.score
            ranks[name] = rank

    def admit(respect_quota: bool) -> None:
        depth = max((len(v) for v in lists.values()), default=0)
        for rank in range(depth):
            for name, cands in lists.items():
                if len(order) >= config.pool_size:
                    return
                if rank >= len(cands):
                    continue
                cand = cands[rank]
                item = int(cand.item_id)
                if item in seen:
                    continue
                if item in pool:
                    tag(item, name, cand, rank)
                    continue
                if respect_quota and used[name] >= config.quotas.get(name, config.pool_size):
                    continue
                pool[item] = ([], {}, {})
                tag(item, name, cand, rank)
                order.append(item)
                used[name] += 1

    admit(respect_quota=True)
    if len(order) < config.pool_size:
        admit(respect_quota=False)
    for name, cands in lists.items():  # tags for items pooled via another source
        for rank, cand in enumerate(cands):
            if int(cand.item_id) in pool:
                tag(int(cand.item_id), name, cand, rank)
    return [
        PooledCandidate(item, tuple(pool[item][0]), pool[item][1], pool[item][2]) for item in order
    ]
