"""The online feed funnel, composed from one model bundle and the catalog.

retrieval (five sources in parallel, merged to ~500) -> multi-task ranker (blend
per experiment variant) -> re-ranking rules (seen, genre filter, content policy,
freshness, diversity, exploration) -> top-k with reasons. Users with fewer than
`full_pipeline_after` interactions get the cold-start chain (onboarding picks,
demographic cohort, popularity) through the same policy rules instead.

A `Funnel` is immutable once built apart from its live inputs (trending list and
bandit counts), so the service can build a new one from a newer bundle in the
background and swap the reference without pausing requests.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from app.experiments import VariantConfig
from catalog.clock import ClockSpec
from catalog.tables import Catalog
from ranking.bandit import BetaBandit
from ranking.base import FeedContext, RankedItem
from ranking.cold_start import (
    ColdStage,
    ColdStartPolicy,
    DemographicCohortSource,
    OnboardingPicks,
    OnboardingSource,
)
from ranking.pipeline import load_ranker
from ranking.ranker import RANK_DEPTH
from ranking.rules import (
    CTR_PRIOR,
    DEFAULT_LAMBDA,
    ItemMeta,
    RulePipeline,
    cold_rules,
    feed_exploration,
    feed_rules,
)
from retrieval.base import Candidate, RequestContext
from retrieval.bundle import RetrievalBundle
from retrieval.merge import CandidateMerger, MergeConfig, SourceList
from retrieval.pipeline import text_vectors
from retrieval.quotas import POOL_SIZE, serving_quotas
from retrieval.sources import ContentSource, CoVisitationSource, PopularitySource, TrendingSource
from retrieval.sources.live_trending import LiveTrendingSource
from retrieval.sources.two_tower import TwoTowerSource

log = logging.getLogger("marquee.funnel")

RECENT_FOR_REASONS = 50
# Sources whose lists depend only on the user's history: computed once per history change
# and stored (features/candidate_lists.py) instead of on every request.
HISTORY_SOURCES = ("two_tower", "covisit", "content")
RANKED_KEEP = 100  # ranked candidates handed to the rules (page + diversity + exploration room)


@dataclass(frozen=True)
class UserState:
    """What the feature store knows about the requesting user."""

    user_id: int
    history: np.ndarray  # raw item ids, oldest first (batch history + fresh events)
    history_times: np.ndarray
    demographics: dict[str, str | int] | None = None
    picks: OnboardingPicks | None = None
    disliked: frozenset[int] = frozenset()
    stale: bool = False  # True when served from the in-process snapshot

    @classmethod
    def anonymous(cls) -> UserState:
        """A request without a user id (chat): no history, no profile."""
        empty = np.empty(0, dtype=np.int64)
        return cls(user_id=0, history=empty, history_times=empty)


@dataclass
class FeedItem:
    item_id: int
    score: float
    sources: tuple[str, ...]
    reason: str
    objectives: dict[str, float] = field(default_factory=dict)


@dataclass
class FeedResult:
    items: list[FeedItem]
    stage: str  # "personalized" or the cold-start stage
    timings_ms: dict[str, float]
    failed: list[str]
    # history-dependent lists computed live by this request (None: reused or not needed)
    fresh_lists: dict[str, list[Candidate]] | None = None


@dataclass(frozen=True)
class FeedQuery:
    k: int = 20
    exclude: frozenset[int] = frozenset()
    include_genres: frozenset[str] = frozenset()
    exclude_genres: frozenset[str] = frozenset()
    maturity: str = "adult"
    explore: bool = True  # False: the page without the exploration slots (evaluation)


class Funnel:
    def __init__(
        self,
        version: str,
        catalog: Catalog,
        merger: CandidateMerger,
        ranker,
        meta: ItemMeta,
        cold_start: ColdStartPolicy,
        trending: LiveTrendingSource,
        covisit: CoVisitationSource,
        content: ContentSource,
        new_items: Sequence[int],
        clock: ClockSpec,
        rank_depth: int | None = RANK_DEPTH,
    ) -> None:
        self.version = version
        # Candidates the deep ranker scores, in merge order (None: the whole pool; the
        # quality guard compares both through this same object).
        self.rank_depth = rank_depth
        self.clock = clock  # the data end and clock mode the bundle was trained for
        self.catalog = catalog
        self.merger = merger
        self.ranker = ranker
        self.meta = meta
        self.cold_start = cold_start
        self.trending = trending
        self.covisit = covisit
        self.content = content
        self.exploration = feed_exploration(meta, new_items)
        self._cold_policy = cold_rules(meta)
        self._pipelines: dict[tuple[float, bool], RulePipeline] = {}
        self._pipeline_lock = threading.Lock()
        self.items = catalog.items.set_index("item_id", drop=False)
        self.summaries = _summaries(catalog.items)

    @classmethod
    def build(cls, folder: Path, catalog: Catalog, settings) -> Funnel:
        """Everything the feed needs, from a bundle folder (retrieval/ + ranking/)."""
        started = time.perf_counter()
        bundle = RetrievalBundle.load(folder / "retrieval")
        ranker = load_ranker(folder / "ranking")
        events = catalog.events
        all_items = catalog.items["item_id"].to_numpy(dtype=np.int64)
        rated = np.unique(events["item_id"].to_numpy(dtype=np.int64))
        text = text_vectors(catalog, settings)
        covisit = CoVisitationSource.fit(events, rated)
        content = ContentSource(all_items, text)
        batch_trending = TrendingSource.fit(events, rated)
        data_end = int(events["timestamp"].max())
        trending = LiveTrendingSource(batch_trending, data_end)
        popularity = PopularitySource.fit(events, rated)
        two_tower = TwoTowerSource(
            bundle.model,
            bundle.features.item_ids,
            bundle.index,
            bundle.occupation_vocab,
            max_gap_bucket=bundle.meta.get("context_gap_cap"),
        )
        merger = CandidateMerger(
            [two_tower, covisit, content, trending, popularity],
            MergeConfig(
                pool_size=POOL_SIZE, quotas=serving_quotas(), timeout_s=settings.source_timeout_s
            ),
        )
        cold = ColdStartPolicy(
            popularity,
            DemographicCohortSource.fit(events, catalog.users, rated),
            OnboardingSource.fit(
                events, catalog.items, rated, content=content, two_tower=two_tower
            ),
        )
        meta = ItemMeta.from_frame(catalog.items)
        new_items = np.setdiff1d(all_items, rated)
        log.info("funnel %s built in %.1fs", folder.name, time.perf_counter() - started)
        return cls(
            folder.name,
            catalog,
            merger,
            ranker,
            meta,
            cold,
            trending,
            covisit,
            content,
            new_items.tolist(),
            _clock_spec(bundle.meta, data_end),
        )

    # live inputs -------------------------------------------------------------------------

    def refresh_live(
        self,
        trending: Sequence[tuple[int, float]],
        clicks: Mapping[int, float],
        impressions: Mapping[int, float],
        at: float | None = None,
    ) -> None:
        """New trending list (as of clock time `at`) and bandit posteriors from the
        nearline counters."""
        self.trending.update(trending, at)
        bandit = BetaBandit.from_ctr(CTR_PRIOR)
        ids = sorted(impressions)
        if ids:
            shown = np.array([impressions[i] for i in ids])
            hits = np.minimum(np.array([clicks.get(i, 0.0) for i in ids]), shown)
            bandit.update_many(ids, hits, shown)
        self.exploration.bandit = bandit

    # the feed ----------------------------------------------------------------------------

    def pipeline(self, lambda_: float, explore: bool = True) -> RulePipeline:
        """The feed's rules (ranking.rules.feed, as evaluation runs them) for one lambda."""
        with self._pipeline_lock:
            key = (lambda_, explore)
            if key not in self._pipelines:
                exploration = self.exploration if explore else None
                self._pipelines[key] = feed_rules(self.meta, lambda_, exploration)
            return self._pipelines[key]

    def signature(self, user: UserState) -> np.ndarray:
        """What the history-dependent lists depend on, hashed to two float32-exact ints."""
        h, t = user.history, user.history_times
        key = (
            f"{self.version}|{len(h)}|{int(h[-1]) if len(h) else ''}|"
            f"{int(t[-1]) if len(t) else ''}|{sorted(user.disliked)}|"
            f"{sorted((user.demographics or {}).items())}"
        )
        digest = hashlib.blake2b(key.encode(), digest_size=6).digest()
        return np.array([int.from_bytes(digest[:3]), int.from_bytes(digest[3:])], np.float32)

    def history_lists(self, user: UserState, now: int) -> dict[str, list[Candidate]]:
        """The history-dependent sources' lists for `user`, as a request at `now` would
        compute them."""
        request = RequestContext(
            user_id=user.user_id,
            history=user.history,
            timestamp=int(now),
            demographics=user.demographics,
            exclude=user.disliked,
            history_times=user.history_times,
        )
        others = {s.name: [] for s in self.merger.sources if s.name not in HISTORY_SOURCES}
        lists = self.merger.gather(request, others).lists
        return {name: lists[name] for name in HISTORY_SOURCES if name in lists}

    def feed(
        self,
        user: UserState,
        query: FeedQuery,
        variant: VariantConfig,
        now: int,
        precomputed: Mapping[str, SourceList] | None = None,
    ) -> FeedResult:
        """The page at clock time `now`; `precomputed` are stored history-dependent lists
        matching `signature`."""
        request = RequestContext(
            user_id=user.user_id,
            history=user.history,
            timestamp=int(now),
            demographics=user.demographics,
            exclude=query.exclude | user.disliked,
            history_times=user.history_times,
        )
        ctx = FeedContext(
            request=request,
            page_size=query.k,
            maturity=query.maturity,
            include_genres=query.include_genres,
            exclude_genres=query.exclude_genres,
        )
        timings: dict[str, float] = {}
        stage = self.cold_start.stage(request, user.picks)
        if stage is ColdStage.FULL_PIPELINE:
            ranked, failed, fresh = self._personalized(
                ctx, variant, timings, precomputed, query.explore
            )
            stage_name = "personalized"
        else:
            ranked, failed = self._cold(ctx, user.picks, timings)
            stage_name, fresh = stage.value, None
        start = time.perf_counter()
        page = ranked[: query.k]
        items = [
            FeedItem(r.item_id, r.score, (*r.sources, *r.reasons), reason, r.objectives)
            for r, reason in zip(page, self.reasons(page, user), strict=True)
        ]
        timings["explain"] = (time.perf_counter() - start) * 1e3
        return FeedResult(items, stage_name, timings, failed, fresh)

    def _personalized(
        self,
        ctx: FeedContext,
        variant: VariantConfig,
        timings: dict[str, float],
        precomputed: Mapping[str, SourceList] | None,
        explore: bool = True,
    ) -> tuple[list[RankedItem], list[str], dict[str, list[Candidate]] | None]:
        start = time.perf_counter()
        reuse = precomputed is not None and set(HISTORY_SOURCES) <= set(precomputed)
        # Filters may remove most of the pool, so filtered requests keep every candidate;
        # otherwise only the head the deep ranker scores is merged (the same items).
        filtered = ctx.include_genres or ctx.exclude_genres or ctx.maturity != "adult"
        depth = None if filtered else self.rank_depth
        merged = self.merger.gather(ctx.request, precomputed if reuse else None, depth)
        fresh = None
        if not reuse and not set(HISTORY_SOURCES) & set(merged.failed):
            fresh = {name: merged.lists[name] for name in HISTORY_SOURCES}
        timings["retrieval"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        weights = self.ranker.weights
        if variant.blend:
            weights = replace(weights, **variant.blend)
        limit = None if filtered else max(RANKED_KEEP, 5 * ctx.page_size)
        ranked = self.ranker.rank(ctx.request, merged.pool, weights=weights, limit=limit)
        timings["ranking"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        lam = DEFAULT_LAMBDA if variant.diversity_lambda is None else variant.diversity_lambda
        result = self.pipeline(lam, explore).run(ctx, ranked)
        timings["rules"] = (time.perf_counter() - start) * 1e3
        return result.items, [*merged.failed, *result.failed], fresh

    def _cold(
        self, ctx: FeedContext, picks: OnboardingPicks | None, timings: dict[str, float]
    ) -> tuple[list[RankedItem], list[str]]:
        start = time.perf_counter()
        depth = ctx.page_size * 3 + 20  # room for the genre filter and policy
        cands = self.cold_start.candidates(ctx.request, depth, picks)
        timings["retrieval"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        ranked = [RankedItem(c.item_id, c.score, sources=(c.source,)) for c in cands]
        result = self._cold_policy.run(ctx, ranked)
        timings["rules"] = (time.perf_counter() - start) * 1e3
        return result.items, result.failed

    # explanations ------------------------------------------------------------------------

    def title(self, item_id: int) -> str:
        summary = self.summaries.get(int(item_id))
        return "this title" if summary is None else summary["title"]

    def reasons(self, page: list[RankedItem], user: UserState) -> list[str]:
        """One short, truthful reason per item, from what actually put it on the page."""
        recent = np.asarray(user.history[-RECENT_FOR_REASONS:], dtype=np.int64)
        anchors = self._covisit_anchors([r.item_id for r in page], recent)
        text_anchors = self._content_anchors([r.item_id for r in page], recent)
        out = []
        for r, anchor, text_anchor in zip(page, anchors, text_anchors, strict=True):
            tags = set(r.sources) | set(r.reasons)
            if "exploration" in tags:
                out.append("Something new we think you might enjoy")
            elif any(s.startswith(ColdStage.ONBOARDING.value) for s in r.sources):
                out.append("Based on the titles and genres you picked")
            elif "covisit" in tags and anchor is not None:
                out.append(f"Because you watched {self.title(anchor)}")
            elif "content" in tags and text_anchor is not None:
                out.append(f"Similar in story to {self.title(text_anchor)}")
            elif "two_tower" in tags:
                out.append("Matches your taste")
            elif "cohort" in tags:
                out.append("Popular with viewers like you")
            elif "trending" in tags:
                out.append("Trending now")
            else:
                out.append("Popular on Marquee")
            if "fresh" in tags:
                out[-1] += " (recent release)"
        return out

    def _covisit_anchors(self, items: list[int], recent: np.ndarray) -> list[int | None]:
        """The recent history item most co-visited with each page item (None: no link)."""
        return _anchors(
            self.covisit.universe,
            items,
            recent,
            self.covisit.links,
        )

    def _content_anchors(self, items: list[int], recent: np.ndarray) -> list[int | None]:
        """The recent history item whose text is closest to each page item's."""
        vectors = self.content.vectors
        return _anchors(
            self.content.universe, items, recent, lambda h, c: vectors[h] @ vectors[c].T
        )

    # item endpoints ----------------------------------------------------------------------

    def similar(self, item_id: int, k: int) -> list[Candidate]:
        """Co-visitation neighbours first (what people watch next), content to fill up."""
        ctx = RequestContext(user_id=None, history=np.array([item_id]), timestamp=0)
        out = self.covisit.candidates(ctx, k)
        listed = {c.item_id for c in out} | {item_id}
        for cand in self.content.more_like_this(item_id, k + len(listed)):
            if len(out) >= k:
                break
            if cand.item_id not in listed:
                out.append(cand)
                listed.add(cand.item_id)
        return out


def _clock_spec(meta: Mapping, data_end: int) -> ClockSpec:
    """The clock the bundle recorded; bundles from before the record: the catalog's end."""
    raw = meta.get("clock")
    return ClockSpec.from_dict(raw) if raw else ClockSpec.for_data(data_end)


def _summaries(items) -> dict[int, dict]:
    """item -> {item_id, title, year, genres}: plain dicts, because a pandas row lookup per
    page item costs more than the ranker."""
    years = items["year"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return {
        int(item): {
            "item_id": int(item),
            "title": str(title),
            "year": None if np.isnan(year) else int(year),
            "genres": [str(g) for g in gs],
        }
        for item, title, year, gs in zip(
            items["item_id"], items["title"], years, items["genres"], strict=True
        )
    }


def _anchors(universe, items: list[int], recent: np.ndarray, affinity) -> list[int | None]:
    """For each item, the history item with the highest positive `affinity(hist, cand)`."""
    hist = universe.index(recent)
    cand = universe.index(np.asarray(items, dtype=np.int64))
    if not items or not (hist >= 0).any():
        return [None] * len(items)
    hist_ids = recent[hist >= 0]
    block = np.asarray(affinity(hist[hist >= 0], np.maximum(cand, 0)))
    best = block.argmax(axis=0)
    return [
        int(hist_ids[b]) if c >= 0 and block[b, j] > 0 else None
        for j, (b, c) in enumerate(zip(best.tolist(), cand.tolist(), strict=True))
    ]
