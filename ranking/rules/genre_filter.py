"""The user's explicit genre filters from the feed request ("only comedies", "no horror").

Semantics: an item passes `include_genres` when it has at least one of them, and fails
`exclude_genres` when it has any of them; names match case-insensitively. An item the
catalog does not know fails a non-empty include filter (its genres cannot be shown to
match) but passes an exclude-only filter. A genre name the catalog lacks matches
nothing, so including only unknown genres empties the feed: asking for "Westerns" must
not silently return everything.
"""

from __future__ import annotations

import numpy as np

from ranking.base import FeedContext, RankedItem
from ranking.rules.meta import ItemMeta


class GenreFilter:
    name = "genre_filter"

    def __init__(self, meta: ItemMeta) -> None:
        self.meta = meta

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        if not ranked or not (ctx.include_genres or ctx.exclude_genres):
            return list(ranked)
        rows = self.meta.rows([r.item_id for r in ranked])
        genres = self.meta.genres[rows]
        keep = np.ones(len(ranked), dtype=bool)
        if ctx.include_genres:
            keep &= genres[:, self.meta.genre_columns(ctx.include_genres)].any(axis=1)
        if ctx.exclude_genres:
            keep &= ~genres[:, self.meta.genre_columns(ctx.exclude_genres)].any(axis=1)
        return [r for r, k in zip(ranked, keep.tolist(), strict=True) if k]
