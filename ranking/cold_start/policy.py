"""The cold-start chain itself: choose a stage, fill the page, let exploration in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ranking.base import FeedContext, RankedItem, Rule
from ranking.cold_start.cohorts import CohortConfig, DemographicCohortSource
from ranking.cold_start.onboarding import OnboardingConfig, OnboardingPicks, OnboardingSource, mix
from retrieval.base import Candidate, CandidateSource, RequestContext
from retrieval.sources.common import top_candidates
from retrieval.sources.popularity import PopularitySource

if TYPE_CHECKING:  # both pull in faiss/torch, which a popularity-only caller never needs
    pass


class ColdStage(StrEnum):
    POPULARITY = "popularity"
    COHORT = "cohort"
    ONBOARDING = "onboarding"
    ONBOARDING_COHORT = "onboarding+cohort"
    FULL_PIPELINE = "full_pipeline"


# (request, the exploited ranking, deeper than the page, k) -> the page to show
ExplorationHook = Callable[[RequestContext, list[Candidate], int], list[Candidate]]


class SourceExploration:
    """Adapts a plain candidate source into an exploration hook.

    Its best items not already on the page take the last `slots` places: the
    simplest rule that spends a fixed, visible share of the page on exploration.
    """

    def __init__(self, source: CandidateSource, slots: int = 2) -> None:
        self.source = source
        self.slots = slots

    def __call__(self, ctx: RequestContext, ranked: list[Candidate], k: int) -> list[Candidate]:
        listed = {c.item_id for c in ranked[:k]}
        fresh = [c for c in self.source.candidates(ctx, k + len(listed)) if c.item_id not in listed]
        extra = fresh[: min(self.slots, k)]
        return ranked[: k - len(extra)] + extra


class RuleExploration:
    """Runs a feed `Rule` (e.g. the bandit `Exploration`) as the exploration hook.

    Candidates travel as `RankedItem`s with their score and source; an item the rule
    gave a reason comes back with that reason as its source ("exploration"), so the
    page still says which slots were spent exploring.
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def __call__(self, ctx: RequestContext, ranked: list[Candidate], k: int) -> list[Candidate]:
        items = [RankedItem(c.item_id, c.score, sources=(c.source,)) for c in ranked]
        out = self.rule.apply(FeedContext(request=ctx, page_size=k), items)
        return [Candidate(r.item_id, r.score, self._label(r)) for r in out]

    def _label(self, item: RankedItem) -> str:
        """The rule's latest reason for the item when it gave one, else its source."""
        labels = (*item.sources, *item.reasons)
        return labels[-1] if labels else self.rule.name


@dataclass(frozen=True)
class ColdStartConfig:
    full_pipeline_after: int = 5  # interactions after which the personalised funnel serves
    # onboarding share vs the (cohort) popularity prior: cross-validated NDCG@10 on the
    # ml-100k new-user slice peaks at 0.1-0.2 and falls steadily beyond (pure onboarding
    # is below popularity there: three picks say less than the crowd about ~100 future films)
    onboarding_weight: float = 0.1
    exploration_slots: int = 2  # used only when the exploration hook is a plain source
    exploration_depth: int = 20  # ranked items below the page an exploration hook may draw

    def __post_init__(self) -> None:
        if self.full_pipeline_after < 1:
            raise ValueError("full_pipeline_after must be >= 1")
        if not 0.0 <= self.onboarding_weight <= 1.0:
            raise ValueError("onboarding_weight must be in [0, 1]")


class ColdStartPolicy:
    """The explicit fallback chain of the module docstring, as one candidate source."""

    name = "cold_start"

    def __init__(
        self,
        popularity: CandidateSource,
        cohort: DemographicCohortSource,
        onboarding: OnboardingSource | None = None,
        exploration: ExplorationHook | CandidateSource | Rule | None = None,
        config: ColdStartConfig | None = None,
    ) -> None:
        """`popularity` may be any non-personal source (e.g. trending instead of all-time)."""
        self.config = config or ColdStartConfig()
        if onboarding is not None and not np.array_equal(
            onboarding.universe.ids, cohort.universe.ids
        ):
            raise ValueError("onboarding and cohort sources must share an item universe")
        self.popularity, self.cohort, self.onboarding = popularity, cohort, onboarding
        self.exploration: ExplorationHook | None
        if isinstance(exploration, CandidateSource):
            self.exploration = SourceExploration(exploration, self.config.exploration_slots)
        elif isinstance(exploration, Rule):
            self.exploration = RuleExploration(exploration)
        else:
            self.exploration = exploration

    @classmethod
    def fit(
        cls,
        events: pd.DataFrame,
        users: pd.DataFrame,
        items: pd.DataFrame,
        item_ids: np.ndarray,
        config: ColdStartConfig | None = None,
        cohort_config: CohortConfig | None = None,
        onboarding_config: OnboardingConfig | None = None,
        exploration: ExplorationHook | CandidateSource | Rule | None = None,
    ) -> ColdStartPolicy:
        """Every part fitted on the same events; content/two-tower can be added by hand."""
        return cls(
            PopularitySource.fit(events, item_ids),
            DemographicCohortSource.fit(events, users, item_ids, cohort_config),
            OnboardingSource.fit(events, items, item_ids, onboarding_config),
            exploration,
            config,
        )

    @staticmethod
    def seeds(ctx: RequestContext, picks: OnboardingPicks | None) -> OnboardingPicks:
        """Picks plus the history so far: a first few interactions are title picks too."""
        picks = picks or OnboardingPicks()
        titles = (*picks.titles, *(int(i) for i in ctx.history))
        return OnboardingPicks(tuple(dict.fromkeys(titles)), picks.genres)

    def _serving_stage(self, ctx: RequestContext, picks: OnboardingPicks | None) -> ColdStage:
        demographic = bool(self.cohort.cohort(ctx.demographics))
        if self.onboarding is not None and self.seeds(ctx, picks):
            return ColdStage.ONBOARDING_COHORT if demographic else ColdStage.ONBOARDING
        return ColdStage.COHORT if demographic else ColdStage.POPULARITY

    def stage(self, ctx: RequestContext, picks: OnboardingPicks | None = None) -> ColdStage:
        """Which fallback applies; `FULL_PIPELINE` once history reaches the threshold.

        Onboarding picks are declarations, not interactions, so they do not count
        toward `full_pipeline_after`.
        """
        if len(ctx.history) >= self.config.full_pipeline_after:
            return ColdStage.FULL_PIPELINE
        return self._serving_stage(ctx, picks)

    def needs_full_pipeline(self, ctx: RequestContext) -> bool:
        return self.stage(ctx) is ColdStage.FULL_PIPELINE

    def prior_scores(self, ctx: RequestContext, picks: OnboardingPicks | None) -> np.ndarray:
        """Cohort popularity (global without demographics), seen items and picks zeroed."""
        universe = self.cohort.universe
        prior = self.cohort.scores(ctx.demographics)
        titles = np.asarray(self.seeds(ctx, picks).titles, dtype=np.int64)
        prior[np.union1d(universe.seen(ctx), universe.known(titles))] = 0.0
        return prior

    def blended_scores(self, ctx: RequestContext, picks: OnboardingPicks | None) -> np.ndarray:
        """Onboarding scores mixed with `prior_scores` at `onboarding_weight`."""
        if self.onboarding is None:
            raise ValueError("no onboarding source configured")
        onboarding = self.onboarding.scores(ctx, self.seeds(ctx, picks))
        w = self.config.onboarding_weight
        parts = [(w, onboarding), (1 - w, self.prior_scores(ctx, picks))]
        return mix(parts, len(self.cohort.universe))

    def candidates(
        self, ctx: RequestContext, k: int, picks: OnboardingPicks | None = None
    ) -> list[Candidate]:
        """Up to `k` unseen items from the serving stage, padded with popularity.

        A `FULL_PIPELINE` user still gets an answer (onboarding on their history, as
        the chain would serve them) so a caller whose funnel is unavailable can fall back.
        """
        if k <= 0:
            return []
        depth = k + (self.config.exploration_depth if self.exploration is not None else 0)
        stage = self._serving_stage(ctx, picks)
        seen_ids = ctx.seen() | frozenset(self.seeds(ctx, picks).titles)
        if stage in (ColdStage.ONBOARDING, ColdStage.ONBOARDING_COHORT):
            universe = self.cohort.universe
            seen = universe.known(np.fromiter(seen_ids, dtype=np.int64, count=len(seen_ids)))
            scores = self.blended_scores(ctx, picks)
            ranked = top_candidates(scores, depth, seen, universe, stage.value)
        elif stage is ColdStage.COHORT:
            ranked = [c._replace(source=stage.value) for c in self.cohort.candidates(ctx, depth)]
        else:
            ranked = []
        request = replace(ctx, exclude=seen_ids)
        filler = self.popularity.candidates(request, depth + len(ranked))
        ranked = _unique_unseen([*ranked, *filler], seen_ids, depth)
        if self.exploration is None:
            return ranked[:k]
        return _unique_unseen([*self.exploration(request, ranked, k), *ranked], seen_ids, k)


def _unique_unseen(ranked: Sequence[Candidate], seen: frozenset[int], k: int) -> list[Candidate]:
    """The first `k` candidates neither seen nor already listed, order kept."""
    out: list[Candidate] = []
    listed: set[int] = set()
    for c in ranked:
        if c.item_id in seen or c.item_id in listed:
            continue
        listed.add(c.item_id)
        out.append(c)
        if len(out) == k:
            break
    return out
