"""Maximal marginal relevance over the head of the list, plus a per-genre page cap.

MMR picks, one slot at a time, the item maximizing
    lambda_ * relevance - (1 - lambda_) * max similarity to the items already picked,
so lambda_ = 1 keeps the incoming order and lower values trade relevance for variety.
Only the head (page plus `head_margin`) is re-ranked: items further down could only
surface by being very unlike the page, and the tail is kept in its original order.

Relevance: ranker scores have no fixed scale, so they are min-max normalized over the
head. Earlier rules (FreshnessBoost, say) may have reordered the list without touching
`score`, and the incoming order is the authority: each item's score is first capped by
the scores of the items ahead of it (a running minimum), so relevance never increases
down the list and lambda_ = 1 reproduces the input order exactly.

Similarity: cosine of genre multi-hot vectors, optionally blended with the cosine of
item embeddings (`embedding_weight`). Items the catalog does not know have zero vectors,
so they look unlike everything; with low lambda_ they may be pulled up.

Genre cap, precisely: let cap = min(max_per_genre, max(1, floor(max_genre_share *
page_size))) over those set. Among the first page_size output items, every genre g is
carried by at most cap items, where "carried" means g is one of the item's genres
(cap_scope "any", the default) or its first-listed genre (cap_scope "primary"; note
MovieLens lists genres alphabetically, so "primary" there means "first in the
alphabet"). Items without genres never count. While filling the page, MMR only picks
among items that keep the cap; if none in the head does, it picks the best MMR item
regardless, so the cap yields to a full page and holds whenever the head has enough
compatible items. Slots after the page are MMR-ordered without a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ranking.base import FeedContext, RankedItem
from ranking.rules.meta import ItemMeta
from ranking.rules.scores import order_consistent_scores


@dataclass(frozen=True)
class DiversityConfig:
    lambda_: float = 0.7  # 1.0 = pure relevance
    head_margin: int = 20  # candidates beyond the page that MMR may pull up
    embedding_weight: float = 0.0  # share of embedding cosine in the similarity
    max_per_genre: int | None = None  # absolute per-genre cap on the page
    max_genre_share: float | None = 0.5  # cap as a share of page_size
    cap_scope: Literal["any", "primary"] = "any"

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ValueError("lambda_ must be in [0, 1]")
        if self.head_margin < 0:
            raise ValueError("head_margin must be >= 0")
        if not 0.0 <= self.embedding_weight <= 1.0:
            raise ValueError("embedding_weight must be in [0, 1]")
        if self.max_per_genre is not None and self.max_per_genre < 1:
            raise ValueError("max_per_genre must be >= 1")
        if self.max_genre_share is not None and not 0.0 < self.max_genre_share <= 1.0:
            raise ValueError("max_genre_share must be in (0, 1]")
        if self.cap_scope not in ("any", "primary"):
            raise ValueError("cap_scope must be 'any' or 'primary'")

    def genre_cap(self, page_size: int) -> int | None:
        caps = []
        if self.max_per_genre is not None:
            caps.append(self.max_per_genre)
        if self.max_genre_share is not None:
            caps.append(max(1, int(self.max_genre_share * page_size)))
        return min(caps) if caps else None


def relevance(ranked: list[RankedItem]) -> np.ndarray:
    """Order-consistent relevance in [0, 1] (see module docstring)."""
    s = order_consistent_scores(ranked)
    span = s[0] - s[-1] if len(s) else 0.0
    return (s - s[-1]) / span if span > 0 else np.zeros(len(s))


class Diversity:
    name = "diversity"

    def __init__(self, meta: ItemMeta, config: DiversityConfig | None = None) -> None:
        self.meta = meta
        self.config = config or DiversityConfig()
        if self.config.embedding_weight > 0 and meta.embeddings is None:
            raise ValueError("embedding_weight > 0 needs ItemMeta built with embeddings")
        genres = meta.genres.astype(np.float32)
        norms = np.linalg.norm(genres, axis=1, keepdims=True)
        self._genre_unit = np.divide(genres, norms, out=np.zeros_like(genres), where=norms > 0)

    def similarity(self, rows: np.ndarray) -> np.ndarray:
        g = self._genre_unit[rows]
        sim = g @ g.T
        w = self.config.embedding_weight
        if w > 0 and self.meta.embeddings is not None:
            e = self.meta.embeddings[rows]
            sim = (1.0 - w) * sim + w * (e @ e.T)
        return sim

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        head_n = min(len(ranked), ctx.page_size + self.config.head_margin)
        if head_n < 2:
            return list(ranked)
        head = ranked[:head_n]
        order = self.mmr_order(head, min(ctx.page_size, head_n))
        return [head[i] for i in order] + ranked[head_n:]

    def mmr_order(self, head: list[RankedItem], page: int) -> list[int]:
        """Indices into `head` in MMR order; the cap applies to the first `page` picks.

        One pass of a few array operations per pick: the items a genre cap rules out are
        kept as a mask that changes only when a genre fills up, not recomputed per pick.
        """
        lam = self.config.lambda_
        rows = self.meta.rows([r.item_id for r in head])
        base = lam * relevance(head)
        sim = (1.0 - lam) * self.similarity(rows)  # penalty weight folded in once
        n = len(head)
        cap = self.config.genre_cap(page)
        scope_any = self.config.cap_scope == "any"
        carried = self.meta.genres[rows]  # (n, G) bool
        primary = self.meta.primary_genre[rows]
        counts = np.zeros(carried.shape[1], dtype=np.int64)
        full = np.zeros(carried.shape[1], dtype=bool)
        breaks = np.zeros(n, dtype=bool)  # picking it would overfill a full genre

        penalty = np.zeros(n)
        taken = np.zeros(n, dtype=bool)
        gain = np.empty(n)
        order: list[int] = []
        for step in range(n):
            np.subtract(base, penalty, out=gain)
            capped = cap is not None and step < page
            excluded = taken | breaks if capped else taken
            if capped and excluded.all():  # no compatible item left: the cap yields
                excluded = taken
            gain[excluded] = -np.inf
            pick = int(gain.argmax())
            order.append(pick)
            taken[pick] = True
            np.maximum(penalty, sim[:, pick], out=penalty)
            if capped:
                if scope_any:
                    counts += carried[pick]
                elif primary[pick] >= 0:
                    counts[primary[pick]] += 1
                newly = (counts >= cap) & ~full
                if newly.any():
                    full |= newly
                    if scope_any:
                        breaks |= carried[:, newly].any(axis=1)
                    else:
                        breaks |= (primary >= 0) & full[primary.clip(min=0)]
        return order
