"""The fast re-ranking rules against plain reference versions of the same definitions.

Why: the feed's rules were rewritten to do less work per request (MMR keeps the capped
items as a mask updated when a genre fills up); the page must stay exactly what the
definition in ranking/rules/diversity.py says, on many random catalogs and lists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranking.base import FeedContext, RankedItem
from ranking.rules import Diversity, DiversityConfig, ItemMeta
from ranking.rules.diversity import relevance
from retrieval.base import RequestContext

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")


def reference_mmr(rule: Diversity, head: list[RankedItem], page: int) -> list[int]:
    """MMR as the module docstring defines it, every quantity recomputed at every pick."""
    cfg = rule.config
    rows = rule.meta.rows([r.item_id for r in head])
    rel, sim = relevance(head), rule.similarity(rows)
    carried, primary = rule.meta.genres[rows], rule.meta.primary_genre[rows]
    cap = cfg.genre_cap(page)
    counts = np.zeros(carried.shape[1], dtype=np.int64)
    max_sim, order = np.zeros(len(head)), []
    for step in range(len(head)):
        gain = cfg.lambda_ * rel - (1.0 - cfg.lambda_) * max_sim
        gain[order] = -np.inf
        if cap is not None and step < page:
            full = counts >= cap
            if cfg.cap_scope == "any":
                breaks = carried[:, full].any(axis=1)
            else:
                breaks = (primary >= 0) & full[primary.clip(min=0)]
            capped = np.where(breaks, -np.inf, gain)
            gain = capped if np.isfinite(capped).any() else gain
        pick = int(np.argmax(gain))
        order.append(pick)
        max_sim = np.maximum(max_sim, sim[:, pick])
        if cap is not None and step < page:
            if cfg.cap_scope == "any":
                counts += carried[pick]
            elif primary[pick] >= 0:
                counts[primary[pick]] += 1
    return order


def random_meta(rng: np.random.Generator, n: int) -> ItemMeta:
    rows = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        genres = [str(g) for g in rng.choice(GENRES, size=k, replace=False)]
        rows.append({"item_id": i + 1, "title": "", "year": None, "genres": genres})
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("Int64")
    return ItemMeta.from_frame(frame)


@pytest.mark.parametrize("scope", ["any", "primary"])
def test_mmr_matches_the_reference_on_random_lists(scope):
    rng = np.random.default_rng(3)
    meta = random_meta(rng, 80)
    for trial in range(60):
        lam = float(rng.choice([0.3, 0.7, 0.85, 1.0]))
        share = None if trial % 5 == 0 else float(rng.choice([0.2, 0.5]))
        rule = Diversity(meta, DiversityConfig(lambda_=lam, max_genre_share=share, cap_scope=scope))
        ids = rng.choice(np.arange(1, 81), size=int(rng.integers(2, 45)), replace=False)
        scores = np.sort(rng.normal(size=ids.size))[::-1]
        head = [RankedItem(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]
        page = int(rng.integers(1, len(head) + 1))
        assert rule.mmr_order(head, page) == reference_mmr(rule, head, page), (trial, lam)


def test_mmr_page_with_a_cap_differs_from_plain_relevance_order():
    # The reference comparison above would pass for a rule that did nothing at all.
    meta = random_meta(np.random.default_rng(5), 40)
    rule = Diversity(meta, DiversityConfig(lambda_=0.5, max_genre_share=0.2))
    head = [RankedItem(i, float(40 - i)) for i in range(1, 41)]
    ctx = FeedContext(RequestContext(user_id=1, history=np.array([], np.int64), timestamp=0), 10)
    out = [r.item_id for r in rule.apply(ctx, head)]
    assert sorted(out) == list(range(1, 41))
    assert out[:10] != list(range(1, 11))
