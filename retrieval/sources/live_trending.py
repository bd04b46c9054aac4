"""Trending for the live service: the last day's engagement from the event stream.

Why a batch fallback: the catalog's own events end years before any request the
service sees, so batch trending evaluated at request time would be empty. Until
the stream has enough engagement, the list is padded with batch trending as of
the catalog's last event, which is what was trending when the data ends.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from retrieval.base import Candidate, RequestContext
from retrieval.sources.popularity import TrendingSource


class LiveTrendingSource:
    name = "trending"
    bounded = True  # an in-memory walk of a presorted list: run inline, see merge.gather

    def __init__(self, batch: TrendingSource, as_of: int, depth: int = 1000) -> None:
        self.universe = batch.universe
        frozen = RequestContext(user_id=None, history=np.empty(0, np.int64), timestamp=as_of)
        self._fallback = batch.candidates(frozen, depth)
        self._live: tuple[tuple[int, float], ...] = ()
        self._lock = threading.Lock()

    def update(self, live: Sequence[tuple[int, float]]) -> None:
        """Replace the live list (item, weighted engagement), best first."""
        known = self.universe.index(np.array([i for i, _ in live], dtype=np.int64))
        kept = tuple(
            (int(i), float(s)) for (i, s), row in zip(live, known, strict=True) if row >= 0
        )
        with self._lock:
            self._live = kept

    def live_items(self) -> tuple[tuple[int, float], ...]:
        with self._lock:
            return self._live

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        seen = ctx.seen()
        out: list[Candidate] = []
        listed: set[int] = set()
        live = self.live_items()
        top = live[0][1] if live else 1.0
        for item, score in live:
            if item not in seen:
                out.append(Candidate(item, 1.0 + score / top, self.name))  # live beats batch
                listed.add(item)
            if len(out) == k:
                return out
        for cand in self._fallback:
            if cand.item_id not in seen and cand.item_id not in listed:
                out.append(Candidate(cand.item_id, cand.score, self.name))
                if len(out) == k:
                    break
        return out
