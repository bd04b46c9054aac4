"""Title search over the catalog: forgiving about case, punctuation, articles and years.

MovieLens titles look like "Matrix, The (1999)"; people type "the matrix". Both
are reduced to the same tokens, and a title matches when it contains every query
token (the last one may be a prefix, for type-ahead). Ties go to popular films.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

_YEAR = re.compile(r"\(\d{4}(?:[-\u2013]\d{0,4})?\)\s*$")
_ARTICLE_SUFFIX = re.compile(r",\s*(the|a|an|les|la|le|il|el|das|der|die)$", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+")
ARTICLES = frozenset({"the", "a", "an"})


def tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    text = _YEAR.sub("", text.strip()).strip()
    text = _ARTICLE_SUFFIX.sub(lambda m: "", text)
    return [t for t in _NON_WORD.split(text.lower()) if t and t not in ARTICLES]


def _years(items: pd.DataFrame) -> np.ndarray:
    """Release years (NaN where unknown): the year column, else the "(1995)" in the title,
    so "Name (YYYY)" in a message can pick that year's film among remakes."""
    if "year" in items:
        return pd.to_numeric(items["year"], errors="coerce").to_numpy(dtype=float)
    found = items["title"].astype(str).str.extract(r"\((\d{4})\)\s*$")[0]
    return pd.to_numeric(found, errors="coerce").to_numpy(dtype=float)


class TitleIndex:
    def __init__(self, items: pd.DataFrame) -> None:
        self.item_ids = items["item_id"].to_numpy(dtype=np.int64)
        self.titles = [tokens(t) for t in items["title"]]
        self.token_sets = [set(t) for t in self.titles]
        self.popularity = items["popularity"].to_numpy(dtype=np.float64)
        self.years = _years(items)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """(item id, score in (0, 1]) best first; empty when nothing matches."""
        words = tokens(query)
        if not words:
            return []
        *whole, last = words
        hits: list[tuple[float, float, int]] = []
        for row, (title, token_set) in enumerate(zip(self.titles, self.token_sets, strict=True)):
            if not all(w in token_set for w in whole):
                continue
            if last not in token_set and not any(t.startswith(last) for t in title):
                continue
            exact = title == words
            score = (1.0 if exact else 0.5) * len(words) / max(len(title), len(words))
            hits.append((score, self.popularity[row], row))
        hits.sort(key=lambda h: (-h[0], -h[1], self.item_ids[h[2]]))
        return [(int(self.item_ids[row]), round(score, 4)) for score, _, row in hits[:k]]
