"""Picks a request reached only through a word of their title ("Sunday" -> First Sunday).

A pick matches "only through a title word" when its title shares a word (stemmed) with
the request and nothing else about the film does: not its genres, tagline, overview,
keywords or tags. Function words do not count; "something" and "Sunday" do, since they
are exactly the words that pulled Something New and First Sunday into mood requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from llm.intent import FUNCTION_WORDS
from ranking.quality_prior import QualityPrior
from retrieval.text_search import TextSearch, lexical_text

_WORD = re.compile(r"[a-z]+")
_IGNORED = FUNCTION_WORDS | frozenset(
    [
        "i",
        "me",
        "my",
        "we",
        "you",
        "a",
        "movie",
        "movies",
        "film",
        "films",
        "no",
        "not",
        "something",
        "anything",
        "please",
        "want",
    ]
) - frozenset({"something"})


def stems(search: TextSearch, text: str) -> set[str]:
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _IGNORED]
    return set(search.stemmer.stemWords(words))


def title_only(search: TextSearch, item_id: int, request: str) -> bool:
    """Whether the pick shares a request word through its title alone."""
    wanted = stems(search, request)
    row = search.items.iloc[search.row_of[int(item_id)]]
    by_title = stems(search, str(row["title"])) & wanted
    return bool(by_title) and not stems(search, lexical_text(row, title=False)) & wanted


def title_only_share(search: TextSearch, picks: Iterable[tuple[str, Sequence[int]]]) -> float:
    """Share of all picks, over (request, picks) pairs, that only a title word matched."""
    flags = [title_only(search, i, request) for request, items in picks for i in items]
    return float(np.mean(flags)) if flags else float("nan")


def mean_rating(prior: QualityPrior, picks: Iterable[Sequence[int]]) -> float:
    """Mean shrunk rating of all picks."""
    ratings = [prior.rating(i) for items in picks for i in items]
    return float(np.mean(ratings)) if ratings else float("nan")
