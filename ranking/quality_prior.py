"""How well liked each film is: a shrunk mean rating, for requests that name no taste.

An open mood request ("something light and funny") matches hundreds of films equally
well on words; a knowledgeable friend names the well-loved ones among them. The raw mean
rating would crown films rated once at 5 stars, so each film's mean is shrunk toward the
catalog's mean by `strength` pseudo-ratings (a Bayesian average): a film needs many
good ratings to rise, and an unrated one sits at the catalog mean. The shrinkage is what
brings popularity in: with few ratings a film stays average, whatever its mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SHRINK_STRENGTH = 10.0  # pseudo-ratings at the catalog mean (a film's first 10 count half)


@dataclass(frozen=True)
class QualityPrior:
    """Shrunk mean rating per item and its percentile among all items (0 worst, 1 best),
    plus each rated item's raw (mean, count), which a reason may quote."""

    shrunk: dict[int, float]
    percentile: dict[int, float]
    mean: float
    raw: dict[int, tuple[float, int]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        events: pd.DataFrame,
        item_ids: np.ndarray | None = None,
        strength: float = SHRINK_STRENGTH,
    ) -> QualityPrior:
        """From rating events (item_id, rating); `item_ids` adds unrated items at the mean."""
        if "rating" not in events or events.empty:
            raise ValueError("a quality prior needs rating events")
        ratings = events[["item_id", "rating"]].dropna()
        mean = float(ratings["rating"].mean())
        stats = ratings.groupby("item_id")["rating"].agg(["sum", "count"])
        shrunk = (stats["sum"] + strength * mean) / (stats["count"] + strength)
        if item_ids is not None:
            unrated = np.setdiff1d(np.asarray(item_ids, dtype=np.int64), shrunk.index.to_numpy())
            shrunk = pd.concat([shrunk, pd.Series(mean, index=unrated)])
        pct = shrunk.rank(pct=True, method="average")
        raw = {
            int(i): (float(total / count), int(count))
            for i, total, count in zip(stats.index, stats["sum"], stats["count"], strict=True)
        }
        return cls(
            {int(i): float(v) for i, v in shrunk.items()},
            {int(i): float(v) for i, v in pct.items()},
            mean,
            raw,
        )

    def rating(self, item_id: int) -> float:
        """The shrunk mean rating (the catalog mean for an item never rated)."""
        return self.shrunk.get(int(item_id), self.mean)

    def rated(self, item_id: int) -> tuple[float, int] | None:
        """The item's mean rating and rating count (None if never rated)."""
        return self.raw.get(int(item_id))

    def lift(self, item_id: int) -> float:
        """The item's percentile in [0, 1] (0.5 for an unknown item)."""
        return self.percentile.get(int(item_id), 0.5)
