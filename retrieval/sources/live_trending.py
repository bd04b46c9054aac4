"""Trending for the live service: the batch definition at request time, plus the stream.

Why one definition: the ranker is trained on pools whose trending list comes from
`TrendingSource` (time-decayed counts of the catalog's events before the request), so
its `rank_trending` feature means "rank by decayed engagement". The served list ranks
by the same decayed counts at the request's time, plus the event stream's weighted
engagement of the last hours (events that fresh weigh about 1 under a two-week half
life), so the feature means the same thing in training and in serving.

Two edge cases. The batch counts are taken at min(request time, data end): after the
catalog's last event nothing new enters the batch, so decaying further scales every
score by one factor and changes no rank, while a request far past the end (a
historical catalog on the wall clock) would fall beyond the decay horizon and find an
empty list. A request before the live list's time (a replay of a past moment) gets no
stream counts: they would be its future.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from retrieval.base import Candidate, RequestContext
from retrieval.sources.common import top_candidates
from retrieval.sources.popularity import TrendingSource

# A request this much older than the live list still counts it (refresh lag).
LIVE_SLACK_S = 3_600


class LiveTrendingSource:
    name = "trending"
    bounded = True  # one vector of scores and a top-k over the catalog: run inline

    def __init__(self, batch: TrendingSource, as_of: int) -> None:
        self.batch = batch
        self.universe = batch.universe
        self.as_of = int(as_of)
        self._live: tuple[tuple[int, float], ...] = ()
        self._live_at: float | None = None
        self._lock = threading.Lock()

    def update(self, live: Sequence[tuple[int, float]], at: float | None = None) -> None:
        """Replace the live list (item, weighted engagement), as of clock time `at`."""
        known = self.universe.index(np.array([i for i, _ in live], dtype=np.int64))
        kept = tuple(
            (int(i), float(s)) for (i, s), row in zip(live, known, strict=True) if row >= 0
        )
        with self._lock:
            self._live, self._live_at = kept, at

    def live_items(self) -> tuple[tuple[int, float], ...]:
        with self._lock:
            return self._live

    def scores(self, timestamp: int) -> np.ndarray:
        """Decayed batch counts at `timestamp` plus the stream's counts (fresh array)."""
        scores = self.batch.scores(min(int(timestamp), self.as_of))
        with self._lock:
            live, live_at = self._live, self._live_at
        if live and (live_at is None or timestamp >= live_at - LIVE_SLACK_S):
            items = np.array([i for i, _ in live], dtype=np.int64)
            np.add.at(scores, self.universe.index(items), [s for _, s in live])
        return scores

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        scores = self.scores(ctx.timestamp)
        return top_candidates(scores, k, self.universe.seen(ctx), self.universe, self.name)
