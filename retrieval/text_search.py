"""Free-text retrieval over the catalog for chat: dense + lexical, fused by rank.

Why both: the sentence encoder understands paraphrase ("a film that messes with your
head") but blurs specifics, while BM25 over title, overview, keywords and tags nails
exact themes ("heist", "zombies") and names. Reciprocal rank fusion combines them
without calibrating two unrelated score scales. Hard constraints from the parsed
request (genres, years, runtime, language) are applied as a mask before ranking, so
they never cost a slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bm25s
import numpy as np
import pandas as pd
import Stemmer

RRF_K = 60  # the usual constant: a rank-1 hit is worth ~1.6x a rank-20 hit


def as_list(value: object) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    return [] if value is None or value != value else [str(value)]


def lexical_text(row: pd.Series, title: bool = True) -> str:
    """Title, genres, tagline, overview, keywords and tags: what people name in a request
    (`title` False: all but the title, for requests that name no film)."""
    parts = [str(row.get("title") or "") if title else "", " ".join(as_list(row.get("genres")))]
    for column in ("tagline", "overview"):
        value = row.get(column)
        if isinstance(value, str):
            parts.append(value)
    for column in ("keywords", "tags"):
        parts.append(" ".join(as_list(row.get(column))))
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Filters:
    include_genres: frozenset[str] = frozenset()
    exclude_genres: frozenset[str] = frozenset()
    year_min: int | None = None
    year_max: int | None = None
    max_runtime: int | None = None
    language: str | None = None


class TextSearch:
    def __init__(
        self,
        items: pd.DataFrame,
        vectors: np.ndarray,
        encode: Callable[[list[str]], np.ndarray],
    ) -> None:
        """`vectors[i]` is the unit text vector of `items.iloc[i]`; `encode` embeds queries."""
        if len(vectors) != len(items):
            raise ValueError("vectors must align with items")
        self.items = items.reset_index(drop=True)
        self.item_ids = self.items["item_id"].to_numpy(dtype=np.int64)
        self.row_of = {int(item): row for row, item in enumerate(self.item_ids)}
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.encode = encode
        self.stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        corpus = [lexical_text(row) for _, row in self.items.iterrows()]
        self.bm25.index(self._tokens(corpus), show_progress=False)
        self._untitled: bm25s.BM25 | None = None  # built on first use (search(titles=False))
        self.genres = [set(as_list(g)) for g in self.items["genres"]]
        self.years = self.items["year"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        runtime = self.items.get("runtime")
        self.runtime = (
            runtime.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            if runtime is not None
            else np.full(len(self.items), np.nan)
        )
        language = self.items.get("language")
        self.language = (
            language.astype(str).str.lower().to_numpy()
            if language is not None
            else np.array([""] * len(self.items))
        )

    def _tokens(self, texts: list[str]):
        return bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)

    def mask(self, filters: Filters, allowed: Iterable[int] | None = None) -> np.ndarray:
        """Rows that satisfy every constraint; unknown years/runtimes do not pass a bound."""
        keep = np.ones(len(self.items), dtype=bool)
        if allowed is not None:
            keep &= np.isin(self.item_ids, np.fromiter(allowed, dtype=np.int64))
        if filters.include_genres:
            keep &= np.array([bool(g & filters.include_genres) for g in self.genres])
        if filters.exclude_genres:
            keep &= np.array([not (g & filters.exclude_genres) for g in self.genres])
        if filters.year_min is not None:
            keep &= self.years >= filters.year_min
        if filters.year_max is not None:
            keep &= self.years <= filters.year_max
        if filters.max_runtime is not None:
            keep &= self.runtime <= filters.max_runtime
        if filters.language:
            keep &= self.language == filters.language.lower()
        return keep

    def dense_scores(self, text: str) -> np.ndarray:
        query = self.encode([text])[0].astype(np.float32)
        return self.vectors @ query

    def _untitled_bm25(self) -> bm25s.BM25:
        """BM25 without the title field: "funny" in a mood request should find funny films,
        not "Funny Face" and "Funny Farm" for their names."""
        if self._untitled is None:
            corpus = [lexical_text(row, title=False) for _, row in self.items.iterrows()]
            index = bm25s.BM25()
            index.index(self._tokens(corpus), show_progress=False)
            self._untitled = index
        return self._untitled

    def lexical_scores(self, text: str, titles: bool = True) -> np.ndarray:
        tokens = self._tokens([text])
        vocab = {i: w for w, i in tokens.vocab.items()}
        words = [vocab[i] for i in tokens.ids[0]] if tokens.ids else []
        bm25 = self.bm25 if titles else self._untitled_bm25()
        return (
            np.asarray(bm25.get_scores(words), dtype=np.float64)
            if words
            else np.zeros(len(self.items))
        )

    def search(
        self,
        text: str,
        k: int,
        filters: Filters | None = None,
        lexical: bool = True,
        allowed: Iterable[int] | None = None,
        titles: bool = True,
    ) -> list[tuple[int, float]]:
        """(item id, fused score) best first, within the filters; `titles` False leaves
        the title field out of the lexical match (the request names no film)."""
        keep = self.mask(filters or Filters(), allowed)
        rows = np.flatnonzero(keep)
        if rows.size == 0:
            return []
        rankings = [self.dense_scores(text)[rows]]
        if lexical:
            lex = self.lexical_scores(text, titles)[rows]
            if lex.max() > 0:
                rankings.append(np.where(lex > 0, lex, -np.inf))
        fused = np.zeros(rows.size)
        for scores in rankings:
            order = np.argsort(-scores, kind="stable")
            ranks = np.empty(rows.size)
            ranks[order] = np.arange(rows.size)
            contribution = 1.0 / (RRF_K + 1 + ranks)
            fused += np.where(np.isfinite(scores), contribution, 0.0)
        best = np.argsort(-fused, kind="stable")[:k]
        return [(int(self.item_ids[rows[b]]), float(fused[b])) for b in best]
