"""Plumbing every candidate source shares: raw-id indexing and seen-aware top-k.

Sources score a dense vector over their item universe, because at catalog sizes
of ~10k items one numpy pass (tens of microseconds) is cheaper than any sparse
bookkeeping, and routing every result through one helper means every source
honours the `CandidateSource` contract (best first, never a seen item) the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrieval.base import Candidate, RequestContext

EVENT_COLUMNS = ("user_id", "item_id", "timestamp")


class ItemUniverse:
    """The raw ids a source may recommend, sorted so lookups are one `searchsorted`."""

    def __init__(self, item_ids: np.ndarray) -> None:
        self.ids = np.unique(np.asarray(item_ids, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.size)

    def index(self, raw_ids: np.ndarray) -> np.ndarray:
        """Index of each raw id, -1 where the id is outside the universe."""
        raw = np.asarray(raw_ids, dtype=np.int64).ravel()
        if self.ids.size == 0:
            return np.full(raw.size, -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw)
        pos_clipped = np.minimum(pos, self.ids.size - 1)
        return np.where(self.ids[pos_clipped] == raw, pos_clipped, -1)

    def known(self, raw_ids: np.ndarray) -> np.ndarray:
        """Indices of the raw ids inside the universe, input order kept."""
        idx = self.index(raw_ids)
        return idx[idx >= 0]

    def seen(self, ctx: RequestContext) -> np.ndarray:
        """Universe indices of `ctx.seen()`, built from arrays to skip a Python set of history."""
        exclude = np.fromiter(ctx.exclude, dtype=np.int64, count=len(ctx.exclude))
        history = np.asarray(ctx.history, dtype=np.int64).ravel()
        return self.known(np.concatenate([history, exclude]))


def index_events(
    events: pd.DataFrame, universe: ItemUniverse
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user codes 0..U-1, item indices, timestamps) of the events inside the universe.

    Events on items outside the universe are dropped before anything is counted,
    so an item the evaluation cannot recommend never shapes another item's score.
    """
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack columns {missing}")
    items = universe.index(events["item_id"].to_numpy())
    keep = items >= 0
    _, users = np.unique(events["user_id"].to_numpy()[keep], return_inverse=True)
    timestamps = events["timestamp"].to_numpy().astype(np.int64)[keep]
    return users.astype(np.int64), items[keep], timestamps


def top_candidates(
    scores: np.ndarray,
    k: int,
    seen: np.ndarray,
    universe: ItemUniverse,
    source: str,
) -> list[Candidate]:
    """The `k` best positive-scored unseen items; ties go to the lower raw id.

    `scores` is scratch space owned by the caller and is modified in place. Items
    scoring zero carry no evidence, so they are left out rather than padded in
    arbitrary order: a merge step fills gaps from other sources better than noise.
    """
    if k <= 0:
        return []
    scores[seen] = 0.0
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        # keep every item tied with the k-th score so the id tie-break below is exact
        kth = -np.partition(-scores[positive], k - 1)[k - 1]
        positive = positive[scores[positive] >= kth]
    order = np.lexsort((positive, -scores[positive]))
    best = positive[order[:k]]
    return [
        Candidate(item, score, source)
        for item, score in zip(universe.ids[best].tolist(), scores[best].tolist(), strict=True)
    ]
