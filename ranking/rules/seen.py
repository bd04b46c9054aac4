"""Drop what the user has already watched or asked to hide.

Retrieval sources promise never to return `ctx.seen()`, but the ranked list may also
hold items injected after retrieval (cold start, editorial), so the feed enforces it
once more right before the page is cut. It has no knobs, hence no config.
"""

from __future__ import annotations

import numpy as np

from ranking.base import FeedContext, RankedItem


class RemoveSeen:
    name = "remove_seen"

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        seen = ctx.request.seen()
        if not seen or not ranked:
            return list(ranked)
        ids = np.fromiter((r.item_id for r in ranked), dtype=np.int64, count=len(ranked))
        keep = ~np.isin(ids, np.fromiter(seen, dtype=np.int64, count=len(seen)))
        return [r for r, k in zip(ranked, keep.tolist(), strict=True) if k]
