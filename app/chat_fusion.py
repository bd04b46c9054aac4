"""Score fusion and page assembly for chat: pure helpers over ranks, cards and facts.

They hold no chat state, so the chat pipeline, the prompt lab and the feed's re-rank
share them, and each is testable without a model or an LLM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from app.funnel import Funnel
from llm.explain import template
from llm.intent import RetrievalQuery
from ranking.base import RankedItem
from retrieval.merge import Pool, RankedIds, SourceList
from retrieval.text_search import RRF_K, Filters, TextSearch

RERANK_HISTORY = 15  # watched titles the re-rank prompt sees


def filters_of(query: RetrievalQuery) -> Filters:
    return Filters(
        frozenset(query.include_genres),
        frozenset(query.exclude_genres),
        query.year_min,
        query.year_max,
        query.max_runtime,
        query.language,
    )


def add_ranks(
    fused: dict[int, float],
    sources: dict[int, set[str]],
    ids: Sequence[int],
    weight: float,
    source: str,
) -> None:
    """Add one ranked list to the fused scores (weighted reciprocal rank) and its source."""
    for rank, item in enumerate(ids):
        fused[item] = fused.get(item, 0.0) + weight / (RRF_K + 1 + rank)
        sources.setdefault(item, set()).add(source)


def pooled_candidates(order: Sequence[int], lists: Mapping[str, SourceList]) -> Pool:
    """Chat candidates as the ranker sees feed candidates: for every source the funnel ran
    (two-tower, co-visitation, content, trending, popularity), the item's rank and score
    in that source's list, its best one where the list repeats it, as the feed's merge
    gives them; -1 where the source did not return it."""
    names = tuple(lists)
    item_ids = np.asarray(list(order), dtype=np.int64)
    ranks = np.full((len(item_ids), len(names)), -1, dtype=np.int32)
    scores = np.zeros((len(item_ids), len(names)), dtype=np.float32)
    row = {int(item): r for r, item in enumerate(item_ids.tolist())}
    for col, name in enumerate(names):
        cands = lists[name]
        if isinstance(cands, RankedIds):
            pairs = zip(cands.ids.tolist(), cands.scores.tolist(), strict=True)
        else:
            pairs = ((c.item_id, c.score) for c in cands)
        for rank, (item, score) in enumerate(pairs):
            r = row.get(int(item))
            if r is not None and ranks[r, col] < 0:
                ranks[r, col], scores[r, col] = rank, score
    return Pool(names, item_ids, ranks, scores)


def catalog_years(years) -> tuple[int, int] | None:
    """The first and last release year that has films (None: no years known)."""
    known = pd.to_numeric(pd.Series(years), errors="coerce").dropna()
    return (int(known.min()), int(known.max())) if len(known) else None


def shown_years(search: TextSearch, items: Sequence[int]) -> list[int]:
    """The release years of a page's items, where known."""
    years = (search.years[search.row_of[i]] for i in items if i in search.row_of)
    return [int(y) for y in years if not np.isnan(y)]


def page_cards(funnel: Funnel, page: Sequence[RankedItem], facts: Sequence) -> list[dict]:
    """The cards a reply shows first: summary, score, sources and the template reason
    (the LLM's reasons replace it later, where they pass their check)."""
    return [
        {
            **funnel.summaries[r.item_id],
            "score": round(r.score, 5),
            "sources": list(r.sources),
            "reason": template(f),
        }
        for r, f in zip(page, facts, strict=True)
    ]


def _card(funnel: Funnel, item_id: int) -> dict:
    summary = funnel.summaries[item_id]
    return {"title": summary["title"], "year": summary["year"], "genres": summary["genres"]}


def rerank_inputs(
    funnel: Funnel, history: np.ndarray, items: Sequence[tuple[int, float]]
) -> tuple[list[dict], list[dict]]:
    """What the re-rank prompts are shown: the user's last items and the candidates (id,
    title, year, genres, score), for chat, the prompt lab and the feed alike."""
    past = [
        _card(funnel, i)
        for i in np.asarray(history)[-RERANK_HISTORY:].tolist()
        if i in funnel.summaries
    ]
    return past, [{"id": i, **_card(funnel, i), "score": score} for i, score in items]
