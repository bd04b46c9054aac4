"""What people have been watching lately: a prior for requests that leave many films
equally good.

Asked "any good comedies?", a knowledgeable friend names comedies people are watching
now, not the hundredth-best match on words. The prior is each film's rating count in a
recent window before the request's clock time, on a log scale and divided by the top
count, so it lies in [0, 1], separates the head of the distribution (where the choice
is) more than a percentile would, and is 0 for a film nobody rated in the window. The
window is long (two years by default): MovieLens-sized catalogs have too few ratings per
week for a short one to mean more than one person's binge.

The live trending source (time-decayed counts plus the event stream) ranks the feed's
"trending" row; this prior only tips chat's fused scores, so it is fitted once per
catalog and clock time, not per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.25 * 24 * 3600
RECENT_WINDOW_S = 2 * SECONDS_PER_YEAR


@dataclass(frozen=True)
class RecentPopularity:
    """log(1 + ratings in the window) / log(1 + the top count), per item."""

    lifts: dict[int, float]
    since: int
    until: int

    @classmethod
    def fit(
        cls, events: pd.DataFrame, now: float, window_s: float = RECENT_WINDOW_S
    ) -> RecentPopularity:
        """From events (item_id, timestamp) before `now`; only the last `window_s` count.
        A clock past the catalog's end (a historical dataset on the wall clock) is held at
        the last event, so the window is never empty for the wrong reason."""
        if events.empty:
            raise ValueError("a popularity prior needs events")
        until = int(min(now, events["timestamp"].max() + 1))
        since = int(until - window_s)
        recent = events[(events["timestamp"] >= since) & (events["timestamp"] < until)]
        counts = recent.groupby("item_id").size()
        top = float(counts.max()) if len(counts) else 0.0
        if top <= 0:
            return cls({}, since, until)
        scaled = np.log1p(counts.to_numpy(dtype=float)) / np.log1p(top)
        lifts = {int(i): float(v) for i, v in zip(counts.index, scaled, strict=True)}
        return cls(lifts, since, until)

    def lift(self, item_id: int) -> float:
        """In [0, 1]: 1 for the most watched film of the window, 0 for one not watched."""
        return self.lifts.get(int(item_id), 0.0)
