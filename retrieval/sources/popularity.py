"""Non-personal sources: all-time popularity and time-decayed trending.

They serve cold users (no usable history) and give the merge step a safe floor;
both are fitted once from events restricted to the recommendable item universe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retrieval.base import Candidate, RequestContext
from retrieval.sources.common import ItemUniverse, index_events, top_candidates

DAY_S = 86_400


class PopularitySource:
    """Items ranked by how many distinct users consumed them.

    Distinct users rather than events, so one user re-rating a film does not make
    it popular. The ranking never changes between requests, so it is sorted once
    and a request only walks its head past the seen items.
    """

    name = "popularity"
    bounded = True  # an in-memory walk of a presorted list: run inline, see merge.gather

    def __init__(self, item_ids: np.ndarray, counts: np.ndarray) -> None:
        """`counts[i]` is the number of users who consumed raw item `item_ids[i]`."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if len(counts) != len(item_ids) or np.unique(item_ids).size != item_ids.size:
            raise ValueError("one count per distinct item id expected")
        self.universe = ItemUniverse(item_ids)
        self.counts = np.asarray(counts, dtype=np.float64)[np.argsort(item_ids)]
        ranked = np.lexsort((np.arange(self.counts.size), -self.counts))
        self._ranked = ranked[self.counts[ranked] > 0]

    @classmethod
    def fit(cls, events: pd.DataFrame, item_ids: np.ndarray) -> PopularitySource:
        universe = ItemUniverse(item_ids)
        users, items, _ = index_events(events, universe)
        n = len(universe)
        distinct_items = np.unique(users * n + items) % n
        counts = np.bincount(distinct_items, minlength=n).astype(np.float64)
        return cls(universe.ids, counts)

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        if k <= 0:
            return []
        seen = self.universe.seen(ctx)
        head = self._ranked[: k + seen.size]
        best = head[~np.isin(head, seen)][:k]
        return [  # Python numbers in one call each, not one conversion per candidate
            Candidate(item, count, self.name)
            for item, count in zip(
                self.universe.ids[best].tolist(), self.counts[best].tolist(), strict=True
            )
        ]


@dataclass(frozen=True)
class TrendingConfig:
    half_life_s: float = 14 * DAY_S
    bucket_s: int = 3_600  # decayed counts are cached per bucket start (an hour)
    # Events older than this many half-lives weigh < 2^-30 of a fresh one and are
    # skipped, which bounds the work per bucket to a recent slice of the log.
    horizon_half_lives: float = 30.0
    cached_buckets: int = 512


class TrendingSource:
    """Items ranked by exponentially time-decayed event counts at request time.

    score_i(t) = sum over events of i with timestamp < t of 2^(-(t - ts) / half_life).
    Only events strictly before `ctx.timestamp` count, so offline replays cannot
    peek into the future. Decay is multiplicative, so the score splits exactly at
    the start B of the request's bucket:
        score(t) = score(B) * 2^(-(t - B) / h) + contributions of events in [B, t).
    score(B) is cached per bucket; a request then costs one vector scale plus a
    bincount over the few events since B, instead of a pass over the whole log.
    """

    name = "trending"
    bounded = True  # an in-memory walk of a presorted list: run inline, see merge.gather

    def __init__(
        self,
        universe: ItemUniverse,
        event_items: np.ndarray,
        event_times: np.ndarray,
        config: TrendingConfig | None = None,
    ) -> None:
        """`event_items` are universe indices (see `ItemUniverse.index`), one per event."""
        self.universe = universe
        self.config = config or TrendingConfig()
        if self.config.half_life_s <= 0 or self.config.bucket_s <= 0:
            raise ValueError("half_life_s and bucket_s must be positive")
        order = np.argsort(event_times, kind="stable")
        self._times = np.asarray(event_times, dtype=np.int64)[order]
        self._items = np.asarray(event_items, dtype=np.int64)[order]
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def fit(
        cls, events: pd.DataFrame, item_ids: np.ndarray, config: TrendingConfig | None = None
    ) -> TrendingSource:
        universe = ItemUniverse(item_ids)
        _, items, times = index_events(events, universe)
        return cls(universe, items, times, config)

    def _decayed(self, lo: int, hi: int, at: int) -> np.ndarray:
        weights = np.exp2(-(at - self._times[lo:hi]) / self.config.half_life_s)
        return np.bincount(self._items[lo:hi], weights=weights, minlength=len(self.universe))

    def _bucket_scores(self, start: int) -> np.ndarray:
        with self._lock:
            cached = self._cache.get(start)
            if cached is not None:
                self._cache.move_to_end(start)
                return cached
        horizon = int(self.config.horizon_half_lives * self.config.half_life_s)
        lo, hi = np.searchsorted(self._times, [start - horizon, start], side="left")
        scores = self._decayed(int(lo), int(hi), start)
        scores.setflags(write=False)
        with self._lock:
            self._cache[start] = scores
            while len(self._cache) > self.config.cached_buckets:
                self._cache.popitem(last=False)
        return scores

    def scores(self, timestamp: int) -> np.ndarray:
        """Decayed counts of every universe item at `timestamp` (a fresh array)."""
        bucket = self.config.bucket_s
        start = (int(timestamp) // bucket) * bucket
        base = self._bucket_scores(start)
        out = base * np.exp2(-(int(timestamp) - start) / self.config.half_life_s)
        lo, hi = np.searchsorted(self._times, [start, int(timestamp)], side="left")
        if hi > lo:
            out += self._decayed(int(lo), int(hi), int(timestamp))
        return out

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        scores = self.scores(ctx.timestamp)
        return top_candidates(scores, k, self.universe.seen(ctx), self.universe, self.name)
