"""Candidate lists computed ahead of the request, kept per user in the feature store.

Why: the sources that depend on the user's history (two-tower ANN, co-visitation,
content) are most of a feed's CPU, yet their output changes only when the history
does. Their lists are stored with a signature of what they were computed from
(bundle, history, dislikes, demographics); a request whose signature matches reuses
them, any other request computes them live and stores the result. A like changes
the history, hence the signature, so it can never be answered from stale lists.
The price: the two-tower list carries the context (hour, weekday, time since the
last event) of the moment it was computed rather than of the request.
"""

from __future__ import annotations

import numpy as np

from features.batch import encode_ids
from features.store import Features
from retrieval.base import Candidate
from retrieval.merge import RankedIds

GROUP = "user_candidates"
SIGNATURE = "signature"


def encode(signature: np.ndarray, lists: dict[str, list[Candidate]]) -> Features:
    out: Features = {SIGNATURE: signature.astype(np.float32)}
    for name, cands in lists.items():
        out[f"{name}.ids"] = encode_ids(np.array([c.item_id for c in cands], dtype=np.int64))
        out[f"{name}.scores"] = np.array([c.score for c in cands], dtype=np.float32)
    return out


def decode(features: Features | None, signature: np.ndarray) -> dict[str, RankedIds] | None:
    """The stored lists, or None when absent or computed from something else."""
    if not features or SIGNATURE not in features:
        return None
    if not np.array_equal(features[SIGNATURE], signature.astype(np.float32)):
        return None
    lists = {}
    for key in features:
        if key.endswith(".ids"):
            name = key[: -len(".ids")]
            lists[name] = RankedIds(features[key].astype(np.int64), features[f"{name}.scores"])
    return lists
