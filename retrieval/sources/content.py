"""Content candidates from item text embeddings (overview, genres, keywords, tags).

The only source that can recommend an item nobody has consumed yet, so it carries
new releases and long-tail films that co-visitation never reaches. The user's
taste is the recency-weighted mean of their history's text vectors: averaging
unit vectors keeps the directions they share, and recent items weigh more
because taste drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retrieval.ann import AnnIndex, Kind
from retrieval.base import Candidate, RequestContext
from retrieval.sources.common import ItemUniverse


@dataclass(frozen=True)
class ContentConfig:
    recent_items: int = 50
    recency_decay: float = 0.95
    ann_kind: Kind = "auto"


class ContentSource:
    name = "content"

    def __init__(
        self, item_ids: np.ndarray, vectors: np.ndarray, config: ContentConfig | None = None
    ) -> None:
        """`vectors[i]` is the L2-normalized text vector of raw item `item_ids[i]`."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(item_ids):
            raise ValueError("vectors must be (n, d), aligned with item_ids")
        if np.unique(item_ids).size != item_ids.size:
            raise ValueError("item_ids must be unique")
        self.config = config or ContentConfig()
        self.universe = ItemUniverse(item_ids)
        self.vectors = np.ascontiguousarray(vectors[np.argsort(item_ids)])
        self.index = AnnIndex.build(self.vectors, self.universe.ids, kind=self.config.ann_kind)

    @classmethod
    def from_catalog(
        cls,
        items: pd.DataFrame,
        item_ids: np.ndarray,
        cache_dir: Path,
        version: str,
        config: ContentConfig | None = None,
    ) -> ContentSource:
        """Build over the universe from the catalog's cached text embeddings."""
        from retrieval.text_encoder import item_embeddings

        vectors = item_embeddings(items, cache_dir, version)
        rows = pd.Index(items["item_id"]).get_indexer(np.asarray(item_ids))
        if (rows < 0).any():
            raise ValueError("some universe items are missing from the catalog")
        return cls(np.asarray(item_ids), vectors[rows], config)

    def profile(self, history: np.ndarray) -> np.ndarray | None:
        """Unit taste vector of a history (oldest first); None when no item has text."""
        recent = self.universe.known(history)[-self.config.recent_items :]
        if recent.size == 0:
            return None
        weights = np.power(self.config.recency_decay, np.arange(recent.size)[::-1])
        mean = weights.astype(np.float32) @ self.vectors[recent]
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else None

    def _search(self, query: np.ndarray, k: int, seen: np.ndarray) -> list[Candidate]:
        """Top `k` unseen neighbours of `query`; over-fetches by the seen items it may hit."""
        if k <= 0:
            return []
        fetch = min(k + seen.size, len(self.universe))
        scores, ids = self.index.search(query, fetch)
        keep = (ids[0] >= 0) & ~np.isin(ids[0], seen)
        return [
            Candidate(int(item), float(score), self.name)
            for item, score in zip(ids[0][keep][:k], scores[0][keep][:k], strict=True)
        ]

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        query = self.profile(np.asarray(ctx.history))
        if query is None:
            return []
        seen = self.universe.ids[self.universe.seen(ctx)]
        return self._search(query, k, seen)

    def more_like_this(
        self, item_id: int, k: int, exclude: frozenset[int] = frozenset()
    ) -> list[Candidate]:
        """Items whose text is closest to `item_id`'s, the item itself left out."""
        row = self.universe.index(np.array([item_id]))[0]
        if row < 0:
            return []
        skip = np.fromiter({int(item_id), *exclude}, dtype=np.int64)
        return self._search(self.vectors[row], k, skip)
