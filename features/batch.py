"""Batch features computed from the catalog, pushed to the online store.

Groups:
- `user_long`: the full interaction history (item ids and event times, oldest
  first) and the genre affinity it implies; the feed's long-term view of a user.
- `item_static`: genre multi-hot and release year.
- `item_dynamic`: distinct-user popularity (batch); the nearline worker keeps the
  live counters next to it.

Vectors are float32 (the store's format), so ids and times are encoded exactly:
item ids must be below 2^24, and a time is split into whole days and seconds of
the day, both exact in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from catalog.tables import Catalog
from features.store import Features, FeatureStore

MAX_EXACT_ID = 2**24
DAY = 86_400


def encode_times(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, dtype=np.int64)
    return (times // DAY).astype(np.float32), (times % DAY).astype(np.float32)


def decode_times(days: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    return days.astype(np.int64) * DAY + seconds.astype(np.int64)


def encode_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.max() >= MAX_EXACT_ID or ids.min() < 0):
        raise ValueError(f"item ids must be in [0, {MAX_EXACT_ID}) to be stored exactly")
    return ids.astype(np.float32)


@dataclass(frozen=True)
class UserHistory:
    items: np.ndarray  # int64 raw ids, oldest first
    times: np.ndarray  # int64 unix seconds

    @classmethod
    def from_features(cls, features: Features) -> UserHistory:
        return cls(
            features["items"].astype(np.int64),
            decode_times(features["days"], features["seconds"]),
        )


def user_histories(events: pd.DataFrame) -> Iterator[tuple[int, UserHistory]]:
    """Each user's events ordered by (time, item), the order training used."""
    ordered = events.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    users = ordered["user_id"].to_numpy()
    items = ordered["item_id"].to_numpy(dtype=np.int64)
    times = ordered["timestamp"].to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    for s, e in zip(starts, ends, strict=True):
        yield int(users[s]), UserHistory(items[s:e], times[s:e])


def genre_matrix(items: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    vocab = sorted({g for gs in items["genres"] for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    matrix = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for row, gs in enumerate(items["genres"]):
        matrix[row, [col[g] for g in gs]] = 1.0
    return vocab, matrix


def push_batch_features(catalog: Catalog, store: FeatureStore, chunk: int = 500) -> dict[str, int]:
    """Write all three groups; returns rows written per group."""
    items = catalog.items.reset_index(drop=True)
    _, genres = genre_matrix(items)
    row_of = pd.Index(items["item_id"])
    years = items["year"].astype("Float64").to_numpy(dtype=np.float32, na_value=0.0)
    popularity = items["popularity"].to_numpy(dtype=np.float32)

    users = 0
    for user_id, history in user_histories(catalog.events):
        rows = row_of.get_indexer(history.items)
        affinity = genres[rows[rows >= 0]].mean(axis=0) if (rows >= 0).any() else genres[0] * 0
        days, seconds = encode_times(history.times)
        store.put_user(
            user_id,
            "user_long",
            {
                "items": encode_ids(history.items),
                "days": days,
                "seconds": seconds,
                "genre_affinity": affinity,
            },
        )
        users += 1

    ids = items["item_id"].to_numpy(dtype=np.int64)
    for lo in range(0, len(ids), chunk):
        part = range(lo, min(lo + chunk, len(ids)))
        store.put_items(
            "item_static", {int(ids[r]): {"genres": genres[r], "year": years[r]} for r in part}
        )
        store.put_items("item_dynamic", {int(ids[r]): {"popularity": popularity[r]} for r in part})
    return {"user_long": users, "item_static": len(ids), "item_dynamic": len(ids)}
