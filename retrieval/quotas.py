"""Merge quota presets: how many candidates each source may put in the pool.

Production training and the offline retrieval report share these, so the ranker
is trained on pools shaped exactly as the report measured them.
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
