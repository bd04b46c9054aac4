"""Onboarding picks: neighbours of picked titles and popular films of picked genres."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from retrieval.base import Candidate, RequestContext
from retrieval.sources.common import ItemUniverse, top_candidates
from retrieval.sources.covisit import CoVisitationSource, CoVisitConfig
from retrieval.sources.popularity import PopularitySource

if TYPE_CHECKING:  # both pull in faiss/torch, which a popularity-only caller never needs
    from retrieval.sources.content import ContentSource
    from retrieval.sources.two_tower import TwoTowerSource


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
