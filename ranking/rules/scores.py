"""Scores as later rules should read them: consistent with the incoming order.

A rule may reorder the list without rewriting `score` (which stays the ranker's, for
explanations), so after it the scores no longer descend down the list. Rules that
weigh scores against something else read them through this helper, which caps each
score by those ahead of it (a running minimum) so that the incoming order stays the
authority: an item is never treated as more relevant than one placed above it.
"""

from __future__ import annotations

import numpy as np

from ranking.base import RankedItem


def order_consistent_scores(ranked: list[RankedItem]) -> np.ndarray:
    """Non-increasing scores; non-finite ones count as the lowest finite score."""
    scores = np.array([r.score for r in ranked], dtype=float)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros(len(scores))
    scores = np.where(finite, scores, scores[finite].min())
    return np.minimum.accumulate(scores)
