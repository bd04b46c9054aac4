"""Merge quota presets: how many candidates each source may put in the pool.

Production training, the serving funnel and the offline reports share these, so the
ranker is trained on pools shaped exactly as the feed serves and the report measured
them.
"""

from __future__ import annotations

# Quota presets tried on validation: the two-tower model and co-visitation carry
# the pool, content/trending/popularity keep a floor of long-tail and fresh items.
QUOTA_PRESETS: dict[str, dict[str, int]] = {
    "balanced": {"two_tower": 250, "covisit": 150, "content": 50, "trending": 25, "popularity": 25},
    "model-heavy": {
        "two_tower": 350,
        "covisit": 100,
        "content": 30,
        "trending": 10,
        "popularity": 10,
    },
    "graph-heavy": {
        "two_tower": 150,
        "covisit": 250,
        "content": 50,
        "trending": 25,
        "popularity": 25,
    },
}
POOL_SIZE = 500
# The preset the feed serves with, and the one the production ranker is trained on: one
# name here, read by the serving funnel, ranker training and the offline feed figures.
SERVING_PRESET = "balanced"


def serving_quotas() -> dict[str, int]:
    """A copy of the served quotas (callers may not edit the shared preset)."""
    return dict(QUOTA_PRESETS[SERVING_PRESET])
