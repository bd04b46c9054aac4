"""Item metadata the re-ranking rules read, packed into arrays once per catalog load.

Why arrays and not the DataFrame: a rule touches ~100-500 items per request and must
cost well under a millisecond, so per-item pandas lookups are out. Everything is
indexed by a catalog row; `rows()` maps raw item ids to rows with one `searchsorted`.
An extra all-empty row at the end stands in for ids the catalog does not know, so
callers can index every array with the result of `rows()` without special cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_NON_WORD = re.compile(r"[^\w]+")


def normalize_term(term: str) -> str:
    """Lower-case, punctuation to single spaces: "R:Drug-Use" and "drug use" must match."""
    return _NON_WORD.sub(" ", str(term).lower()).strip()


def _as_list(value: object) -> list[str]:
    # Parquet hands back numpy arrays, hand-built frames lists, missing cells None/NaN.
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, Iterable):
        return []
    return [v for v in value if isinstance(v, str) and v]


@dataclass(frozen=True, eq=False)
class ItemMeta:
    item_ids: np.ndarray  # (n,) int64 raw ids, catalog order
    genre_names: tuple[str, ...]  # column order of `genres`
    genres: np.ndarray  # (n + 1, G) bool multi-hot; last row = unknown item
    primary_genre: np.ndarray  # (n + 1,) int64 column of the first listed genre, -1 if none
    year: np.ndarray  # (n + 1,) float64 release year, NaN if unknown
    # (n + 1) normalized keywords + tags per row
    terms: tuple[tuple[str, ...], ...] = field(repr=False)
    # (n + 1, d) float32 unit rows, zero where an item has no embedding
    embeddings: np.ndarray | None = field(repr=False)
    _sorted_ids: np.ndarray = field(repr=False)
    _sorted_rows: np.ndarray = field(repr=False)

    @classmethod
    def from_frame(
        cls,
        items: pd.DataFrame,
        embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ItemMeta:
        """Build from the catalog items table; `embeddings` is (item_ids, vectors) if any."""
        item_ids = items["item_id"].to_numpy(dtype=np.int64)
        if len(np.unique(item_ids)) != len(item_ids):
            raise ValueError("item ids must be unique")
        genre_lists = [_as_list(g) for g in items["genres"]]
        names = tuple(sorted({g for gs in genre_lists for g in gs}))
        col = {g: j for j, g in enumerate(names)}
        n = len(item_ids)
        genres = np.zeros((n + 1, len(names)), dtype=bool)
        primary = np.full(n + 1, -1, dtype=np.int64)
        for i, gs in enumerate(genre_lists):
            if gs:
                genres[i, [col[g] for g in gs]] = True
                primary[i] = col[gs[0]]
        year = np.full(n + 1, np.nan)
        if "year" in items:
            year[:n] = (
                pd.to_numeric(items["year"])
                .astype("Float64")
                .to_numpy(dtype=float, na_value=np.nan)
            )
        terms = _item_terms(items)
        order = np.argsort(item_ids, kind="stable")
        return cls(
            item_ids=item_ids,
            genre_names=names,
            genres=genres,
            primary_genre=primary,
            year=year,
            terms=(*terms, ()),
            embeddings=_align_embeddings(item_ids, embeddings),
            _sorted_ids=item_ids[order],
            _sorted_rows=order.astype(np.int64),
        )

    @property
    def unknown_row(self) -> int:
        return len(self.item_ids)

    def rows(self, item_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Catalog rows of raw ids; ids the catalog lacks map to `unknown_row`."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if len(self._sorted_ids) == 0:
            return np.full(ids.shape, self.unknown_row, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids).clip(max=len(self._sorted_ids) - 1)
        hit = self._sorted_ids[pos] == ids
        return np.where(hit, self._sorted_rows[pos], self.unknown_row)

    def genre_columns(self, names: Iterable[str]) -> np.ndarray:
        """Columns of the named genres, matched case-insensitively; unknown names ignored."""
        wanted = {n.lower() for n in names}
        return np.array(
            [j for j, g in enumerate(self.genre_names) if g.lower() in wanted], dtype=np.int64
        )


def _item_terms(items: pd.DataFrame) -> list[tuple[str, ...]]:
    """Keywords and tags per item, normalized and deduplicated (first occurrence wins)."""
    columns = [items[c] for c in ("keywords", "tags") if c in items]
    if not columns:
        return [() for _ in range(len(items))]
    out = []
    for cells in zip(*columns, strict=True):
        normalized = (normalize_term(t) for cell in cells for t in _as_list(cell))
        out.append(tuple(dict.fromkeys(t for t in normalized if t)))
    return out


def _align_embeddings(
    item_ids: np.ndarray, embeddings: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray | None:
    if embeddings is None:
        return None
    emb_ids = np.asarray(embeddings[0], dtype=np.int64)
    vectors = np.asarray(embeddings[1], dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(emb_ids):
        raise ValueError("embeddings must be (ids, (len(ids), d) matrix)")
    out = np.zeros((len(item_ids) + 1, vectors.shape[1]), dtype=np.float32)
    where = {int(i): r for r, i in enumerate(emb_ids)}
    rows = [(r, where[int(i)]) for r, i in enumerate(item_ids) if int(i) in where]
    if rows:
        dst, src = (np.array(x) for x in zip(*rows, strict=True))
        out[dst] = vectors[src]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
