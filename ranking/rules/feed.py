"""The feed's rules and their order, in one place for serving and offline evaluation.

Why here: the served page and the offline figure must come from the same rules in the
same order, or the figure measures a feed nobody is served (it did: offline applied
only Diversity, serving also Freshness and Exploration). The serving funnel and the
evaluation both build their pipelines with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from ranking.bandit import BetaBandit
from ranking.rules.diversity import Diversity, DiversityConfig
from ranking.rules.exploration import Exploration
from ranking.rules.freshness import FreshnessBoost, FreshnessConfig
from ranking.rules.genre_filter import GenreFilter
from ranking.rules.meta import ItemMeta
from ranking.rules.pipeline import RulePipeline
from ranking.rules.policy import ContentPolicy
from ranking.rules.seen import RemoveSeen

DEFAULT_LAMBDA = 0.85  # MMR trade-off chosen on validation in the ranking report
CRITICAL = ("remove_seen", "genre_filter", "content_policy")  # safety: never fail open
CTR_PRIOR = 0.05  # the bandit's prior click rate for an item it has no impressions of


def feed_exploration(
    meta: ItemMeta, new_items: Iterable[int], bandit: BetaBandit | None = None
) -> Exploration:
    """The feed's exploration rule: Thompson draws over under-exposed ranked items and
    brand-new titles that pass the content policy (a prior-only bandit by default, as
    in offline evaluation before any impression)."""
    return Exploration(
        bandit or BetaBandit.from_ctr(CTR_PRIOR), new_items=new_items, admit=[ContentPolicy(meta)]
    )


def feed_rules(
    meta: ItemMeta,
    lambda_: float = DEFAULT_LAMBDA,
    exploration: Exploration | None = None,
    freshness: FreshnessConfig | None = None,
) -> RulePipeline:
    """Filters, freshness, diversity, then exploration (last: it places items at fixed
    page slots). `exploration=None` is the page without it (reported beside it)."""
    rules = [
        RemoveSeen(),
        GenreFilter(meta),
        ContentPolicy(meta),
        FreshnessBoost(meta, freshness),
        Diversity(meta, DiversityConfig(lambda_=lambda_)),
    ]
    if exploration is not None:
        rules.append(exploration)
    return RulePipeline(rules, critical=CRITICAL)


def cold_rules(meta: ItemMeta) -> RulePipeline:
    """What a cold-start page goes through: the filters and the policy only."""
    return RulePipeline([RemoveSeen(), GenreFilter(meta), ContentPolicy(meta)], critical=CRITICAL)
