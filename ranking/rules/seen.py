"""Drop what the user has already watched or asked to hide.

Retrieval sources promise never to return `ctx.seen()`, but the ranked list may also
hold items injected after retrieval (cold start, editorial), so the feed enforces it
once more right before the page is cut. It has no knobs, hence no config.
"""

from __future__ import annotations

from ranking.base import FeedContext, RankedItem


class RemoveSeen:
    name = "remove_seen"

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        seen = ctx.request.seen()
        if not seen or not ranked:
            return list(ranked)
        # A set lookup per ranked item: ~100 items against a history of hundreds, where
        # building arrays for np.isin costs more than the lookups.
        return [r for r in ranked if r.item_id not in seen]
