"""Static item and user features shared by the two-tower model and later the ranker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

YEAR_MIN, YEAR_MAX = 1900, 2030
UNKNOWN_YEAR_BUCKET = 0
AGE_BUCKETS = (18, 25, 35, 45, 50, 56)  # ml-1m style cut points


def year_bucket(year: float | int | None) -> int:
    """5-year buckets, 0 for unknown: films of the same era share a bucket."""
    if year is None or pd.isna(year):
        return UNKNOWN_YEAR_BUCKET
    clipped = min(max(int(year), YEAR_MIN), YEAR_MAX)
    return 1 + (clipped - YEAR_MIN) // 5


N_YEAR_BUCKETS = year_bucket(YEAR_MAX) + 1


@dataclass(frozen=True)
class ItemFeatures:
    """Item features aligned with an item vocabulary (row i = vocabulary item i)."""

    item_ids: np.ndarray  # raw ids
    genres: np.ndarray  # (n, n_genres) float32 multi-hot
    year_buckets: np.ndarray  # (n,) int64
    text: np.ndarray  # (n, text_dim) float32, L2-normalized
    genre_vocab: tuple[str, ...]

    @classmethod
    def build(
        cls,
        items: pd.DataFrame,
        item_ids: np.ndarray,
        text_vectors: np.ndarray,
        genre_vocab: tuple[str, ...] | None = None,
    ) -> ItemFeatures:
        """`text_vectors` is aligned with `items` rows; the result follows `item_ids`."""
        row_of = pd.Series(np.arange(len(items)), index=items["item_id"].to_numpy())
        rows = row_of.loc[item_ids].to_numpy()
        sub = items.iloc[rows]
        vocab = genre_vocab or tuple(sorted({g for gs in items["genres"] for g in gs}))
        col = {g: j for j, g in enumerate(vocab)}
        genres = np.zeros((len(item_ids), len(vocab)), dtype=np.float32)
        for i, gs in enumerate(sub["genres"]):
            for g in gs:
                if g in col:
                    genres[i, col[g]] = 1.0
        years = np.array([year_bucket(y) for y in sub["year"]], dtype=np.int64)
        return cls(np.asarray(item_ids), genres, years, text_vectors[rows], vocab)


def age_bucket(age: int | None) -> int:
    if age is None or pd.isna(age):
        return 0
    return 1 + int(np.searchsorted(AGE_BUCKETS, age, side="right"))


@dataclass(frozen=True)
class UserFeatures:
    """Demographics as small categorical codes; 0 means unknown."""

    user_ids: np.ndarray
    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    occupation_vocab: tuple[str, ...]

    @classmethod
    def build(cls, users: pd.DataFrame, user_ids: np.ndarray) -> UserFeatures:
        frame = users.set_index("user_id").reindex(user_ids)
        n = len(user_ids)
        if "gender" not in frame:
            zeros = np.zeros(n, dtype=np.int64)
            return cls(np.asarray(user_ids), zeros, zeros.copy(), zeros.copy(), ())
        gender = frame["gender"].map({"M": 1, "F": 2}).fillna(0).astype(np.int64).to_numpy()
        age = np.array([age_bucket(a) for a in frame["age"]], dtype=np.int64)
        vocab = tuple(sorted(frame["occupation"].dropna().unique()))
        occ_code = {o: j + 1 for j, o in enumerate(vocab)}
        occupation = frame["occupation"].map(occ_code).fillna(0).astype(np.int64).to_numpy()
        return cls(np.asarray(user_ids), gender, age, occupation, vocab)
