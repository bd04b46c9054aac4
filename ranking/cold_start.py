"""Cold start: what to show a user the personalised models know little or nothing about.

The fallback chain, from least to most known (`ColdStartPolicy.stage` names it):

1. nothing known -> global popularity (`POPULARITY`);
2. demographics -> popularity within the user's demographic cohort (`COHORT`);
3. onboarding picks, or a first few interactions -> neighbours of the picked titles
   and popular films of the picked genres, blended with the cohort's popularity
   (`ONBOARDING_COHORT`), or with global popularity when no demographics are known
   (`ONBOARDING`): a handful of picks says what a user likes but not how mainstream
   they are, and the popularity prior carries that;
4. `full_pipeline_after` interactions -> `FULL_PIPELINE`: the personalised funnel
   has enough history to take over.

Every page may then pass through an exploration hook: a callable, a plain source
whose items take the last slots, or a feed `Rule` such as the Thompson-sampling
`ranking.rules.exploration.Exploration`, which draws from the ranked items below
the page. The policy re-checks the candidate contract after the hook, so a hook
cannot leak a seen item or a duplicate onto the page.

Defaults were chosen by `evaluation.cold_start_eval` on ml-100k, by cross-validation
over the users that the new-user test slice leaves out.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ranking.base import FeedContext, RankedItem, Rule
from retrieval.base import Candidate, CandidateSource, RequestContext
from retrieval.features import age_bucket
from retrieval.sources.common import ItemUniverse, top_candidates
from retrieval.sources.covisit import CoVisitationSource, CoVisitConfig
from retrieval.sources.popularity import PopularitySource

if TYPE_CHECKING:  # both pull in faiss/torch, which a popularity-only caller never needs
    from retrieval.sources.content import ContentSource
    from retrieval.sources.two_tower import TwoTowerSource

DEMOGRAPHIC_FIELDS = ("age", "gender", "occupation")
Demographics = Mapping[str, str | int] | None
CohortKey = tuple[str | int, ...]


def demographic_codes(demographics: Demographics) -> dict[str, str | int]:
    """The usable demographic fields: age as its `age_bucket`, gender "M"/"F", occupation.

    Unusable values (absent, None, NaN, an unknown gender, a blank occupation) are
    dropped instead of coded as "unknown", so people who withheld a field are not
    pooled into a cohort of their own; they are served by the coarser level above.
    """
    out: dict[str, str | int] = {}
    if not demographics:
        return out
    age = demographics.get("age")
    if age is not None and not pd.isna(age):
        with contextlib.suppress(TypeError, ValueError):  # an unparsable age is withheld
            out["age"] = age_bucket(int(age))
    gender = str(demographics.get("gender") or "").strip().upper()
    if gender in ("M", "F"):
        out["gender"] = gender
    occupation = demographics.get("occupation")
    if occupation is not None and not pd.isna(occupation) and str(occupation).strip():
        out["occupation"] = str(occupation).strip().lower()
    return out


@dataclass(frozen=True)
class CohortConfig:
    """`levels` orders the fields coarse to fine: a cohort is shrunk toward the cohort
    of its known fields minus the last one, down to global popularity.

    Defaults: best cross-validated NDCG@10 of `evaluation.cold_start_eval` on ml-100k
    over 15 level orders x 8 strengths. Occupation is left out: its best setting
    (age > gender > occupation, m = 100) tied age > gender within noise, and without
    shrinkage the 3-field cohorts (~3 users on average) fell far below popularity.
    """

    levels: tuple[str, ...] = ("age", "gender")
    prior_strength: float = 30.0  # m, in pseudo-users of the parent cohort

    def __post_init__(self) -> None:
        if len(set(self.levels)) != len(self.levels) or set(self.levels) - set(DEMOGRAPHIC_FIELDS):
            raise ValueError(f"levels must be distinct fields of {DEMOGRAPHIC_FIELDS}")
        if self.prior_strength < 0:
            raise ValueError("prior_strength must be >= 0")


@dataclass(frozen=True)
class _CohortTable:
    """Distinct-user counts per item for every cohort over one set of fields."""

    rows: dict[CohortKey, int]
    counts: np.ndarray  # (cohorts, items)
    sizes: np.ndarray  # (cohorts,) users in each cohort


def _cohort_table(
    fields: tuple[str, ...], codes: Sequence[dict[str, str | int]], consumed: sp.csr_matrix
) -> _CohortTable:
    rows: dict[CohortKey, int] = {}
    members: list[int] = []
    groups: list[int] = []
    for user, code in enumerate(codes):
        if all(f in code for f in fields):
            members.append(user)
            groups.append(rows.setdefault(tuple(code[f] for f in fields), len(rows)))
    group_of = np.asarray(groups, dtype=np.int64)
    assign = sp.csr_matrix(
        (np.ones(group_of.size), (group_of, np.asarray(members, dtype=np.int64))),
        shape=(len(rows), consumed.shape[0]),
    )
    counts = np.asarray((assign @ consumed).todense(), dtype=np.float64)
    sizes = np.bincount(group_of, minlength=len(rows)).astype(np.float64)
    return _CohortTable(rows, counts, sizes)


class DemographicCohortSource:
    """Popularity within the user's demographic cohort, shrunk toward coarser cohorts.

    p(i | cohort) is the share of the cohort's users who consumed i. Small cohorts
    (ml-100k has 7 age buckets x 2 genders x 21 occupations for 943 users) make that
    share noisy, so each level is a Beta-binomial posterior mean whose prior is the
    parent level, with `prior_strength` m pseudo-users:

        p_level(i) = (n_cohort(i) + m * p_parent(i)) / (n_cohort + m)

    down from p_global(i) = n(i) / n_users. A cohort of 3 users moves the estimate
    little and one of 300 dominates it; an unseen cohort (n = 0) simply inherits its
    parent. Missing fields are skipped, so the chain is built from the known fields
    in `levels` order and a request without demographics gets global popularity.
    Counts for every subset of fields are tabulated at fit time, which is what lets
    any field be missing at request time.
    """

    name = "cohort"

    def __init__(
        self,
        universe: ItemUniverse,
        tables: dict[tuple[str, ...], _CohortTable],
        config: CohortConfig | None = None,
    ) -> None:
        self.universe = universe
        self.config = config or CohortConfig()
        self._tables = tables

    @classmethod
    def fit(
        cls,
        events: pd.DataFrame,
        users: pd.DataFrame,
        item_ids: np.ndarray,
        config: CohortConfig | None = None,
    ) -> DemographicCohortSource:
        """`users` has user_id plus any of age, gender, occupation (others are ignored)."""
        universe = ItemUniverse(item_ids)
        items = universe.index(events["item_id"].to_numpy())
        keep = items >= 0
        raw_users, user_codes = np.unique(events["user_id"].to_numpy()[keep], return_inverse=True)
        consumed = sp.csr_matrix(
            (np.ones(int(keep.sum())), (user_codes, items[keep])),
            shape=(raw_users.size, len(universe)),
        )
        consumed.sum_duplicates()
        consumed.data[:] = 1.0  # distinct users: a re-rating does not make a film popular
        table = users.drop_duplicates("user_id").set_index("user_id")
        table = table.reindex(raw_users)[[f for f in DEMOGRAPHIC_FIELDS if f in table.columns]]
        codes = [demographic_codes(row) for row in table.to_dict("records")]
        tables = {
            fields: _cohort_table(fields, codes, consumed)
            for size in range(len(DEMOGRAPHIC_FIELDS) + 1)
            for fields in itertools.combinations(DEMOGRAPHIC_FIELDS, size)
        }
        return cls(universe, tables, config)

    def reconfigured(self, config: CohortConfig) -> DemographicCohortSource:
        """The same fitted counts under another level order or prior strength (for tuning)."""
        return DemographicCohortSource(self.universe, self._tables, config)

    def cohort(self, demographics: Demographics) -> dict[str, str | int]:
        """The fields this source conditions on for these demographics (for explanations)."""
        codes = demographic_codes(demographics)
        return {f: codes[f] for f in self.config.levels if f in codes}

    def scores(self, demographics: Demographics) -> np.ndarray:
        """Smoothed share of the cohort consuming each universe item (a fresh array)."""
        known = list(self.cohort(demographics))
        codes = demographic_codes(demographics)
        top = self._tables[()]
        n_users = float(top.sizes[0]) if top.sizes.size else 0.0
        if n_users == 0:
            return np.zeros(len(self.universe))
        p = top.counts[0] / n_users
        m = self.config.prior_strength
        for depth in range(1, len(known) + 1):
            fields = tuple(f for f in DEMOGRAPHIC_FIELDS if f in known[:depth])
            table = self._tables[fields]
            row = table.rows.get(tuple(codes[f] for f in fields))
            if row is None or table.sizes[row] + m == 0:
                continue  # nobody of this cohort was seen: the parent's estimate stands
            p = (table.counts[row] + m * p) / (table.sizes[row] + m)
        return p

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        scores = self.scores(ctx.demographics)
        return top_candidates(scores, k, self.universe.seen(ctx), self.universe, self.name)


@dataclass(frozen=True)
class OnboardingPicks:
    """What a new user told us at sign-up: titles they like (raw item ids) and genres."""

    titles: tuple[int, ...] = ()
    genres: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.titles or self.genres)


@dataclass(frozen=True)
class OnboardingConfig:
    """Shares of each evidence part; not tuned (the ml-100k slice has title picks only)."""

    genre_weight: float = 0.5  # genre part vs title part when both were picked
    two_tower_weight: float = 0.5  # two-tower vs co-visitation within the title part
    two_tower_depth: int = 200  # two-tower candidates turned into scores


def _normalized(scores: np.ndarray) -> np.ndarray | None:
    total = float(scores.sum())
    return scores / total if total > 0 else None


def mix(parts: Sequence[tuple[float, np.ndarray]], size: int) -> np.ndarray:
    """Weighted sum of score vectors, each first rescaled to sum to one.

    Rescaling makes the weights mean shares of attention whatever each part's units
    (visit counts, cosines, cohort shares); a part without evidence drops out and
    the others split its weight, so one empty signal never empties the page.
    """
    live = [(w, n) for w, s in parts if w > 0 and (n := _normalized(s)) is not None]
    out = np.zeros(size)
    total = sum(w for w, _ in live)
    for weight, part in live:
        out += part * (weight / total)
    return out


def _onto(universe: ItemUniverse, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Scores keyed by raw ids laid out over `universe` (ids outside it are dropped)."""
    out = np.zeros(len(universe))
    idx = universe.index(ids)
    out[idx[idx >= 0]] = np.asarray(values, dtype=np.float64)[idx >= 0]
    return out


class OnboardingSource:
    """Turns onboarding picks into candidates.

    - Title picks act as a tiny history. Their item-to-item neighbours come from
      co-visitation (the strongest single source on MovieLens, see bench/RESULTS.md);
      titles without any co-visitation evidence (new releases) fall back to content
      similarity when a `ContentSource` is given. With a `TwoTowerSource`, the picks
      also become its history (demographics included) and its ranked list is blended
      in with rank-discounted weights 1 / log2(rank + 2), since its dot products have
      no common scale with visit counts.
    - Genre picks score popular films of those genres: distinct-user count times the
      share of picked genres the film has, so a film matching every pick outranks an
      equally popular film matching one.
    """

    name = "onboarding"

    def __init__(
        self,
        popularity: PopularitySource,
        genres: pd.Series,
        covisit: CoVisitationSource | None = None,
        content: ContentSource | None = None,
        two_tower: TwoTowerSource | None = None,
        config: OnboardingConfig | None = None,
    ) -> None:
        """`genres` maps raw item id -> list of genre names (the catalog's items.genres)."""
        self.universe = popularity.universe
        self.config = config or OnboardingConfig()
        self.popularity = popularity.counts
        self.covisit, self.content, self.two_tower = covisit, content, two_tower
        by_item = [
            [str(g).lower() for g in gs] if isinstance(gs, list | tuple | np.ndarray) else []
            for gs in genres.reindex(self.universe.ids)
        ]
        vocab = sorted({g for gs in by_item for g in gs})
        self.genre_vocab = {g: j for j, g in enumerate(vocab)}
        self.genres = np.zeros((len(self.universe), len(vocab)), dtype=np.float64)
        for row, gs in enumerate(by_item):
            self.genres[row, [self.genre_vocab[g] for g in gs]] = 1.0

    @classmethod
    def fit(
        cls,
        events: pd.DataFrame,
        items: pd.DataFrame,
        item_ids: np.ndarray,
        config: OnboardingConfig | None = None,
        covisit_config: CoVisitConfig | None = None,
        content: ContentSource | None = None,
        two_tower: TwoTowerSource | None = None,
    ) -> OnboardingSource:
        genres = pd.Series(items["genres"].to_numpy(), index=items["item_id"].to_numpy())
        return cls(
            PopularitySource.fit(events, item_ids),
            genres,
            CoVisitationSource.fit(events, item_ids, covisit_config),
            content,
            two_tower,
            config,
        )

    def _title_part(self, ctx: RequestContext) -> np.ndarray:
        """Neighbour scores of `ctx.history` (the picks), over this source's universe."""
        n = len(self.universe)
        graph = np.zeros(n)
        if self.covisit is not None:
            graph = _onto(self.universe, self.covisit.universe.ids, self.covisit.scores(ctx))
        if not graph.any() and self.content is not None:
            profile = self.content.profile(np.asarray(ctx.history))
            if profile is not None:
                sims = np.maximum(self.content.vectors @ profile, 0.0)
                graph = _onto(self.universe, self.content.universe.ids, sims)
        if self.two_tower is None:
            return graph
        listed = self.two_tower.candidates(ctx, self.config.two_tower_depth)
        ids = np.array([c.item_id for c in listed], dtype=np.int64)
        ranked = _onto(self.universe, ids, 1.0 / np.log2(np.arange(ids.size) + 2.0))
        tw = self.config.two_tower_weight
        return mix([(1 - tw, graph), (tw, ranked)], n)

    def _genre_part(self, genres: Sequence[str]) -> np.ndarray:
        picked = {str(g).lower() for g in genres}
        cols = sorted(j for g, j in self.genre_vocab.items() if g in picked)
        if not cols:
            return np.zeros(len(self.universe))
        return self.popularity * self.genres[:, cols].mean(axis=1)

    def scores(self, ctx: RequestContext, picks: OnboardingPicks | None = None) -> np.ndarray:
        """A distribution over unseen items (all zero without usable picks).

        Without `picks`, `ctx.history` serves as the title picks.
        """
        picks = picks if picks is not None else OnboardingPicks(tuple(map(int, ctx.history)))
        seeds = RequestContext(
            user_id=ctx.user_id,
            history=np.asarray(picks.titles, dtype=np.int64),
            timestamp=ctx.timestamp,
            demographics=ctx.demographics,
            exclude=ctx.seen(),
        )
        seen = self.universe.seen(seeds)
        parts = []
        if picks.titles:
            parts.append((1 - self.config.genre_weight, self._title_part(seeds)))
        if picks.genres:
            parts.append((self.config.genre_weight, self._genre_part(picks.genres)))
        for _, part in parts:
            part[seen] = 0.0
        return mix(parts, len(self.universe))

    def candidates(
        self, ctx: RequestContext, k: int, picks: OnboardingPicks | None = None
    ) -> list[Candidate]:
        scores = self.scores(ctx, picks)
        seen = self.universe.seen(ctx)
        if picks is not None:
            seen = np.union1d(seen, self.universe.known(np.asarray(picks.titles, dtype=np.int64)))
        return top_candidates(scores, k, seen, self.universe, self.name)


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
