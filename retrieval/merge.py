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
    # Run sources on a thread pool (lowest latency for one request) or one after another
    # in the calling thread: a server already running one request per core gains nothing
    # from the pool and pays its hand-offs and queueing under load.
    parallel: bool = True


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
        if not self.config.parallel:
            return self._gather_inline(ctx)
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

    def _gather_inline(self, ctx: RequestContext) -> MergeResult:
        """Sources in turn; one that fails or overruns the timeout is dropped from the pool."""
        lists: dict[str, list[Candidate]] = {}
        latency: dict[str, float] = {}
        failed: list[str] = []
        for source in self.sources:
            try:
                out, latency[source.name] = self._timed(source, ctx)
            except Exception as exc:  # a broken source must not break the feed
                failed.append(source.name)
                log.warning("candidate source %s failed: %s", source.name, exc)
                continue
            if latency[source.name] > self.config.timeout_s * 1000:
                failed.append(source.name)
                log.warning("candidate source %s timed out", source.name)
                continue
            lists[source.name] = out
        return MergeResult(merge(lists, self.config, ctx), latency, failed)

    def candidates(self, ctx: RequestContext) -> list[PooledCandidate]:
        return self.gather(ctx).candidates


def merge(
    lists: dict[str, list[Candidate]], config: MergeConfig, ctx: RequestContext | None = None
) -> list[PooledCandidate]:
    """Interleave ranked lists by rank under quotas, dedup, then fill up from leftovers.

    Each pooled item is tagged with every source that returned it, ordered by the
    rank at which the source had it (ties: source order), with that source's score.
    """
    seen = ctx.seen() if ctx is not None else frozenset()
    names = list(lists)
    # every candidate once, in interleaving order: rank 0 of each source, then rank 1, ...
    sequence = sorted(
        (rank, position, int(cand.item_id), cand.score)
        for position, name in enumerate(names)
        for rank, cand in enumerate(lists[name])
    )
    quotas = [config.quotas.get(name, config.pool_size) for name in names]
    used = [0] * len(names)
    order: list[int] = []
    pooled: set[int] = set()
    for respect_quota in (True, False):
        for _, position, item, _ in sequence:
            if len(order) >= config.pool_size:
                break
            if item in pooled or item in seen:
                continue
            if respect_quota and used[position] >= quotas[position]:
                continue
            pooled.add(item)
            order.append(item)
            used[position] += 1
    tags: dict[int, tuple[list[str], dict[str, float], dict[str, int]]] = {
        item: ([], {}, {}) for item in order
    }
    for rank, position, item, score in sequence:
        entry = tags.get(item)
        if entry is not None and names[position] not in entry[2]:  # first (best) rank wins
            entry[0].append(names[position])
            entry[1][names[position]] = score
            entry[2][names[position]] = rank
    return [PooledCandidate(item, tuple(tags[item][0]), tags[item][1], tags[item][2])
            for item in order]  # fmt: skip
