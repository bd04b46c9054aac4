"""The facts behind each chat pick, read from the signals that actually produced it.

Only these facts may appear in an explanation (llm/explain.py): "you watched X" names
the item of the user's own recent history most co-visited with the pick (or, failing
that, closest in story), keywords are the pick's own TMDB keywords and tags that share
a stem with the request, genres are the pick's genres the request asked for or implied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from app.chat_retrieval import Priors
from app.funnel import RECENT_FOR_REASONS, Funnel, UserState
from llm.explain import Facts
from llm.intent import RetrievalQuery
from ranking.base import RankedItem
from retrieval.text_search import TextSearch, as_list

MAX_KEYWORDS = 2
# A pick's standing is quoted when it sets the pick apart: rated in the catalog's top
# fifth by shrunk mean with enough ratings to mean it, or among the very most watched lately.
WELL_RATED = 0.8
MIN_RATINGS = 20
MUCH_WATCHED = 0.9  # 0.75 put it on nearly every pick of a thriller page: no longer a difference
_WORD = re.compile(r"[a-z]+")
SOURCE_WORDS = {
    "taste": "your taste",
    "request": "your request",
    "implied_genre": "the mood you described",
}


def _stems(search: TextSearch, text: str) -> set[str]:
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 2]
    return set(search.stemmer.stemWords(words))


def matched_keywords(search: TextSearch, item_id: int, stems: set[str]) -> tuple[str, ...]:
    """The item's keywords/tags sharing a stem with the request, most specific first."""
    row = search.row_of.get(int(item_id))
    if row is None or not stems:
        return ()
    record = search.items.iloc[row]
    found: list[str] = []
    for column in ("keywords", "tags"):
        for keyword in as_list(record.get(column)):
            if keyword.lower() not in found and _stems(search, keyword) & stems:
                found.append(keyword.lower())
    return tuple(sorted(found, key=lambda k: (-len(k.split()), k))[:MAX_KEYWORDS])


def _closest_titles(funnel: Funnel, ids: list[int], titles: Sequence[int]) -> list[int | None]:
    """For each pick, the conversation's title it is closest to: most co-visited, or
    failing that closest in story (None without titles)."""
    if not titles or not ids:
        return [None] * len(ids)
    named = np.asarray(list(titles), dtype=np.int64)
    covisit = funnel._covisit_anchors(ids, named)
    content = funnel._content_anchors(ids, named)
    return [a if a is not None else b for a, b in zip(covisit, content, strict=True)]


def _item_moods(search: TextSearch, item_id: int, moods: Sequence[str]) -> tuple[str, ...]:
    """The request's mood words that the pick's own keywords, tags or story share: a
    reason names what the film has, not the request echoed back."""
    row = search.row_of.get(int(item_id))
    if row is None or not moods:
        return ()
    record = search.items.iloc[row]
    own = " ".join(
        [
            str(record.get("overview") or ""),
            str(record.get("tagline") or ""),
            *as_list(record.get("keywords")),
            *as_list(record.get("tags")),
        ]
    )
    have = _stems(search, own)
    return tuple(m for m in moods if _stems(search, m) & have)[:2]


def standing(priors: Priors, item_id: int) -> str | None:
    """What sets a pick apart from the other matches of a broad request, in numbers the
    catalog holds: "rated 4.2/5 by 310 viewers", or "popular lately"."""
    quality = priors.quality
    if quality is not None and quality.lift(item_id) >= WELL_RATED:
        rated = quality.rated(item_id)
        if rated is not None and rated[1] >= MIN_RATINGS:
            return f"rated {rated[0]:.1f}/5 by {rated[1]} viewers"
    if priors.popular is not None and priors.popular.lift(item_id) >= MUCH_WATCHED:
        return "popular lately"
    return None


def item_facts(
    funnel: Funnel,
    search: TextSearch,
    user: UserState,
    query: RetrievalQuery,
    page: Sequence[RankedItem],
    priors: Priors | None = None,
) -> list[Facts]:
    ids = [r.item_id for r in page]
    recent = np.asarray(user.history[-RECENT_FOR_REASONS:], dtype=np.int64)
    anchors: list[int | None] = [None] * len(ids)
    if recent.size and ids:
        covisit = funnel._covisit_anchors(ids, recent)
        content = funnel._content_anchors(ids, recent)
        anchors = [a if a is not None else b for a, b in zip(covisit, content, strict=True)]
    stems = _stems(search, " ".join([query.text, *query.mood_terms]))
    wanted = set(query.include_genres) | set(query.prefer_genres)
    closest = _closest_titles(funnel, ids, query.similar_to)
    out = []
    for item, anchor, like_id in zip(page, anchors, closest, strict=True):
        summary = funnel.summaries[item.item_id]
        sources = set(item.sources)
        source = next(
            (SOURCE_WORDS[s] for s in ("taste", "implied_genre", "request") if s in sources), None
        )
        out.append(
            Facts(
                title=summary["title"],
                watched=(funnel.title(anchor),) if anchor is not None else (),
                like_title=funnel.title(like_id)
                if like_id is not None and sources & {"similar", "taste"}
                else None,
                genres=tuple(g for g in summary["genres"] if g in wanted),
                keywords=matched_keywords(search, item.item_id, stems),
                moods=_item_moods(search, item.item_id, query.mood_terms),
                source=source,
                standing=standing(priors, item.item_id) if priors is not None else None,
            )
        )
    return out
