"""Lift recent releases, relative to when the request happens.

Age is the calendar year of `ctx.request.timestamp` (UTC) minus the release year, so
offline replays of old logs see "recent" as it was then. A release year after the
request year gets no boost: the film was not out yet, and boosting it would reward
future leakage in replays.

Why additive in units of the list's score spread: ranker scores have no fixed scale
and may be negative (a blend that subtracts P(regret)), so a multiplicative boost would
push negative scores the wrong way. The boost is
    strength * std(scores) * 0.5 ** (age / half_life_years)   for age <= max_age_years
so strength 0.5 lifts a film released this year by half a standard deviation of the
list's scores, one `half_life_years` old by a quarter, and older films not at all.

The rule reorders by the boosted key but leaves `score` untouched: it stays the ranker's
score for explanations (see ranking.base); later rules read the new order instead. The
key's base is the order-consistent score (ranking.rules.scores), so items without a
boost keep their incoming relative order even if an earlier rule reordered them.
Boosted items get the reason "fresh". Ties keep the incoming order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from ranking.base import FeedContext, RankedItem
from ranking.rules.meta import ItemMeta
from ranking.rules.scores import order_consistent_scores

FRESH = "fresh"


@dataclass(frozen=True)
class FreshnessConfig:
    strength: float = 0.5  # boost for age 0, in standard deviations of the list's scores
    half_life_years: float = 1.0
    max_age_years: int = 2  # older releases get no boost and no tag

    def __post_init__(self) -> None:
        if self.strength < 0 or self.half_life_years <= 0 or self.max_age_years < 0:
            raise ValueError("strength >= 0, half_life_years > 0, max_age_years >= 0")


def request_year(timestamp: int) -> int:
    return datetime.fromtimestamp(timestamp, UTC).year


class FreshnessBoost:
    name = "freshness"

    def __init__(self, meta: ItemMeta, config: FreshnessConfig | None = None) -> None:
        self.meta = meta
        self.config = config or FreshnessConfig()

    def boosts(self, ctx: FeedContext, ranked: list[RankedItem]) -> np.ndarray:
        """Additive boost per item (0 for old or undated items)."""
        cfg = self.config
        scores = np.array([r.score for r in ranked], dtype=float)
        finite = scores[np.isfinite(scores)]
        spread = float(finite.std()) if len(finite) > 1 else 0.0
        scale = cfg.strength * (spread if spread > 0 else 1.0)
        years = self.meta.year[self.meta.rows([r.item_id for r in ranked])]
        age = request_year(ctx.request.timestamp) - years
        fresh = (age >= 0) & (age <= cfg.max_age_years)  # False for NaN years
        return np.where(fresh, scale * 0.5 ** (np.nan_to_num(age) / cfg.half_life_years), 0.0)

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        if not ranked or self.config.strength == 0:
            return list(ranked)
        boost = self.boosts(ctx, ranked)
        if not boost.any():
            return list(ranked)
        key = order_consistent_scores(ranked) + boost
        order = np.argsort(-key, kind="stable")
        return [_tagged(ranked[i]) if boost[i] > 0 else ranked[i] for i in order.tolist()]


def _tagged(item: RankedItem) -> RankedItem:
    if FRESH in item.reasons:
        return item
    # built directly: dataclasses.replace costs several times more, for half the list
    return RankedItem(
        item.item_id, item.score, item.objectives, item.sources, [*item.reasons, FRESH]
    )
