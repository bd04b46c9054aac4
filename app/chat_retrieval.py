"""Chat's candidates: what the request says, what the conversation's titles suggest, and
what people liked, fused by weighted reciprocal rank.

- the request's text, searched within its constraints, only when it has content of its
  own (greetings and title-only messages are not searched); the title field counts only
  when the text names a film, so "funny" finds funny films, not "Funny Farm";
- the neighbours (co-visitation, then content) of every title the conversation liked or
  saw, and the two-tower user tower over the user's history plus those titles;
- a soft lift for genres the request implies, a quality prior (shrunk mean rating
  percentile) that tips ties among equally good matches toward well-loved films, and a
  popularity prior (ratings in the last two years) toward films people watch now.

Weights were chosen on validation data, never on the reported turns or requests
(`marquee bench chat_quality`, `marquee bench conversational`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from app.chat_fusion import add_ranks, filters_of, pooled_candidates
from app.funnel import Funnel, UserState
from catalog.search import TitleIndex, tokens
from llm.intent import GENERIC_WORDS, RetrievalQuery
from llm.intent.lexicon import FUNCTION_WORDS, GENRE_WORDS, SMALL_TALK_WORDS
from ranking.base import RankedItem
from ranking.popularity_prior import RecentPopularity
from ranking.quality_prior import QualityPrior
from retrieval.base import RequestContext
from retrieval.text_search import RRF_K, TextSearch

TEXT_DEPTH = 200  # text hits considered before personalisation and rules
TASTE_WEIGHT = 0.5  # the user's two-tower rank counts half as much as the request's
RANKER_WEIGHT = 0.5  # the multi-task ranker's order, for known users, likewise
NEIGHBOURS = 50  # per conversation title
# Lift of a title in a genre the request implies (the LLM proposal): chosen on the
# validation mood requests for the default model (`marquee bench chat_quality`).
PREFER_WEIGHT = 0.1
# Quality prior lift, in rank-1 units: chosen on the validation mood requests (precision
# with a higher mean rating of the picks; `marquee bench chat_quality`).
QUALITY_WEIGHT = 0.1
# Neighbours of the conversation's titles, relative to the request's text: chosen on
# the tuning half of the ReDial dialogues (`marquee bench conversational`).
SIMILAR_WEIGHT = 0.5
# Popularity prior lift, in rank-1 units: chosen on the tuning half of the ReDial
# dialogues (`marquee bench conversational`). It tips conversations with titles ("I
# loved Shrek") and requests that describe nothing beyond a genre ("any comedies?"),
# never a described request without titles: there it would outrank the description (validation
# mood precision@10 fell from 0.515 to 0.23 with it, `marquee bench chat_quality`).
POPULAR_WEIGHT = 8.0


@dataclass
class Weights:
    """The fusion weights of chat's sources (the request's text has weight 1)."""

    prefer: float = PREFER_WEIGHT
    quality: float = QUALITY_WEIGHT
    similar: float = SIMILAR_WEIGHT
    popular: float = POPULAR_WEIGHT


@dataclass(frozen=True)
class Priors:
    """What chat knows of each film apart from the request: how well liked it is, and
    how much it has been watched lately."""

    quality: QualityPrior | None = None
    popular: RecentPopularity | None = None

    def lift(self, item: int, weights: Weights) -> float:
        """The priors' weighted lift of one item, in rank-1 units."""
        lift = 0.0
        if self.quality is not None:
            lift += weights.quality * self.quality.lift(item)
        if self.popular is not None:
            lift += weights.popular * self.popular.lift(item)
        return lift / (RRF_K + 1)

    def filled(self, events: pd.DataFrame, item_ids: np.ndarray, now: float) -> Priors:
        """These priors, with those missing fitted on the catalog's events at `now`."""
        return Priors(
            self.quality or QualityPrior.fit(events, item_ids),
            self.popular or RecentPopularity.fit(events, now),
        )


PLAIN_WORDS = GENERIC_WORDS | FUNCTION_WORDS | SMALL_TALK_WORDS | GENRE_WORDS


def describes(query: RetrievalQuery) -> bool:
    """Whether the request says what it wants beyond genre and filler ("a clever heist",
    "something light"): then its words rank, and popularity does not."""
    words = re.findall(r"[\w'-]+", query.text.lower()) if query.searchable else []
    return bool(query.mood_terms) or any(w not in PLAIN_WORDS for w in words)


def search_text(text: str) -> str:
    """The request's words without the ones that carry no request ("something", "movie",
    "please"): embedded or matched, those find titles ("Something New"), not moods."""
    kept = [w for w in re.findall(r"[\w'-]+", text) if w.lower() not in GENERIC_WORDS]
    return " ".join(kept) or text


def names_title(titles: TitleIndex, text: str) -> bool:
    """Whether the text is a film's whole title ("Inception", "the matrix"), so the title
    field may match it; a mood request's words are not."""
    wanted = tokens(text)
    return bool(wanted) and any(hit[1] == 1.0 for hit in titles.search(text, 3))


def prior_order(
    search: TextSearch, priors: Priors, weights: Weights, scope: np.ndarray
) -> list[int]:
    """The items in `scope` (a row mask) by the priors alone, best first: the answer to a
    request with nothing to search ("Hi!") and no titles yet. Ties (and priors weighted
    0) fall back on the shrunk rating."""
    ids = search.item_ids[scope].tolist()
    rating = priors.quality.rating if priors.quality is not None else (lambda _: 0.0)
    return sorted(ids, key=lambda i: (-priors.lift(i, weights), -rating(i), i))


def request_scores(
    search: TextSearch,
    titles: TitleIndex,
    funnel: Funnel | None,
    query: RetrievalQuery,
    weights: Weights,
    priors: Priors,
    allowed: Iterable[int] | None = None,
    depth: int = TEXT_DEPTH,
) -> tuple[dict[int, float], dict[int, set[str]]]:
    """Fused request scores: text hits, neighbours of the conversation's titles, implied
    genres and the priors. `query.similar_to` holds every taste title so far."""
    filters = filters_of(query)
    fused: dict[int, float] = {}
    sources: dict[int, set[str]] = {}
    allowed = None if allowed is None else set(allowed)
    mask = search.mask(filters, allowed)
    if query.searchable:
        text = search_text(query.text)
        lexical_titles = names_title(titles, query.text)
        hits = search.search(text, depth, filters, allowed=allowed, titles=lexical_titles)
        add_ranks(fused, sources, [i for i, _ in hits], 1.0, "request")
    if funnel is not None and query.similar_to and weights.similar > 0:
        scope = set(search.item_ids[mask].tolist())
        for item in query.similar_to:
            near = [c.item_id for c in funnel.similar(item, NEIGHBOURS) if c.item_id in scope]
            add_ranks(fused, sources, near, weights.similar, "similar")
    if not fused and (priors.quality or priors.popular):  # nothing to search, no titles yet
        best = prior_order(search, priors, weights, mask)[:depth]
        add_ranks(fused, sources, best, 1.0, "quality")
    if query.prefer_genres and weights.prefer > 0:
        prefer = set(query.prefer_genres)
        lift = weights.prefer / (RRF_K + 1)
        for item in fused:
            if prefer & set(search.genres[search.row_of[item]]):
                fused[item] += lift
                sources[item].add("implied_genre")
    # A described request with no titles to go on ("a clever heist"): what its words ask
    # for ranks, not popularity. With titles, their neighbours are the match, and among
    # them a friend names the ones people watch.
    if describes(query) and not query.similar_to:
        weights = replace(weights, popular=0.0)
    for item in fused:
        fused[item] += priors.lift(item, weights)
    return fused, sources


def with_taste(
    search: TextSearch,
    funnel: Funnel,
    user: UserState,
    query: RetrievalQuery,
    fused: dict[int, float],
    sources: dict[int, set[str]],
    now: int,
    weights: tuple[float, float] = (TASTE_WEIGHT, RANKER_WEIGHT),
) -> list[RankedItem]:
    """The request's scores plus the user's taste inside the same constraints (the
    two-tower user tower over their history, which holds the conversation's titles),
    then, for known users past cold start, the ranker, which sees each candidate's rank in
    every funnel source, run as the feed runs them. `weights`: (taste, ranker)."""
    taste_weight, ranker_weight = weights
    request = RequestContext(
        user.user_id, user.history, now, user.demographics, user.disliked, user.history_times
    )
    # the conversation's titles are taste even below the feed's cold-start threshold
    full = funnel.cold_start.needs_full_pipeline(request)
    personal = len(user.history) > 0 and (full or bool(query.similar_to))
    lists = funnel.merger.gather(request).lists if personal else {}
    if lists and taste_weight > 0:
        scope = set(search.item_ids[search.mask(filters_of(query))].tolist())
        taste = [c.item_id for c in lists.get("two_tower", []) if c.item_id in scope]
        add_ranks(fused, sources, taste[:TEXT_DEPTH], taste_weight, "taste")
    order = sorted(fused, key=lambda i: (-fused[i], i))
    if lists and full and user.user_id and funnel.ranker is not None:
        ranked = funnel.ranker.rank(request, pooled_candidates(order, lists))
        for rank, r in enumerate(ranked):
            fused[r.item_id] += ranker_weight / (RRF_K + 1 + rank)
        order = sorted(fused, key=lambda i: (-fused[i], i))
    return [RankedItem(i, fused[i], sources=tuple(sorted(sources[i]))) for i in order]
