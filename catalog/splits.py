"""Split protocols.

LOO-full follows the public LlamaRec/SASRec setup so our numbers are comparable
with published ones: all ratings are implicit positives, iterative 5-core on
users and items, each user's events ordered by (timestamp, item id), the last
item is the test target, the second-to-last the validation target, and models
rank the full catalog with the user's history excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp


def k_core(events: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Drop users and items with fewer than `k` events, repeating until stable."""
    out = events
    while True:
        user_counts = out.groupby("user_id")["item_id"].transform("size")
        item_counts = out.groupby("item_id")["user_id"].transform("size")
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return out.reset_index(drop=True)
        out = out.loc[keep]


@dataclass(frozen=True)
class Interactions:
    """Events in index space: users and items renumbered 0..n-1 for matrix code."""

    events: pd.DataFrame  # user_idx, item_idx, rating, timestamp, in (user, time, item) order
    n_users: int
    n_items: int

    def matrix(self) -> sp.csr_matrix:
        """Binary user x item matrix (float32), the input of every non-sequential model."""
        data = np.ones(len(self.events), dtype=np.float32)
        mat = sp.csr_matrix(
            (data, (self.events["user_idx"].to_numpy(), self.events["item_idx"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat

    def sequences(self) -> list[np.ndarray]:
        """Each user's item indices in chronological order (for sequential models)."""
        grouped = self.events.groupby("user_idx", sort=True)["item_idx"].apply(np.asarray)
        seqs = [np.empty(0, dtype=np.int64)] * self.n_users
        for user, items in grouped.items():
            seqs[int(user)] = items.astype(np.int64)
        return seqs


@dataclass(frozen=True)
class EvalStage:
    """What a model is fitted on and what it must rank, for one stage (valid or test)."""

    name: str
    train: Interactions
    history: sp.csr_matrix  # items excluded from ranking, per user
    targets: sp.csr_matrix  # relevant held-out items, per user
    users: np.ndarray  # user indices evaluated (rows of targets with at least one item)
    request_times: np.ndarray  # per user: when the held-out event happened (request context)


@dataclass(frozen=True)
class Split:
    name: str
    dataset: str
    user_ids: np.ndarray  # index -> raw user id
    item_ids: np.ndarray  # index -> raw item id
    stages: dict[str, EvalStage]
    stats: dict[str, float | int | str] = field(default_factory=dict)

    def stage(self, name: str) -> EvalStage:
        return self.stages[name]


def _index(events: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    user_ids = np.sort(events["user_id"].unique())
    item_ids = np.sort(events["item_id"].unique())
    out = events.copy()
    out["user_idx"] = np.searchsorted(user_ids, out["user_id"].to_numpy())
    out["item_idx"] = np.searchsorted(item_ids, out["item_id"].to_numpy())
    return out, user_ids, item_ids


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def _times(held_out: pd.DataFrame, n_users: int) -> np.ndarray:
    times = np.zeros(n_users, dtype=np.int64)
    times[held_out["user_idx"].to_numpy()] = held_out["timestamp"].to_numpy()
    return times


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["user_idx", "item_idx", "rating", "timestamp"]].reset_index(drop=True)


def loo_full(events: pd.DataFrame, dataset: str, k: int = 5) -> Split:
    """Leave-one-out over the full catalog (see module docstring)."""
    core = k_core(events[["user_id", "item_id", "rating", "timestamp"]], k)
    core, user_ids, item_ids = _index(core)
    core = core.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    position_from_end = core.groupby("user_idx").cumcount(ascending=False).to_numpy()
    train = core.loc[position_from_end >= 2]
    valid = core.loc[position_from_end == 1]
    test = core.loc[position_from_end == 0]
    shape = (len(user_ids), len(item_ids))
    users = np.arange(len(user_ids))

    train_inter = Interactions(_columns(train), *shape)
    train_valid = Interactions(_columns(core.loc[position_from_end >= 1]), *shape)
    valid_t = _csr(valid["user_idx"].to_numpy(), valid["item_idx"].to_numpy(), shape)
    test_t = _csr(test["user_idx"].to_numpy(), test["item_idx"].to_numpy(), shape)
    stages = {
        "valid": EvalStage(
            "valid", train_inter, train_inter.matrix(), valid_t, users, _times(valid, shape[0])
        ),
        "test": EvalStage(
            "test", train_valid, train_valid.matrix(), test_t, users, _times(test, shape[0])
        ),
    }
    stats = {
        "protocol": f"LOO-full, {k}-core",
        "users": len(user_ids),
        "items": len(item_ids),
        "interactions": len(core),
        "density": round(len(core) / (shape[0] * shape[1]), 5),
        "raw_users": int(events["user_id"].nunique()),
        "raw_items": int(events["item_id"].nunique()),
        "raw_interactions": len(events),
    }
    return Split("loo-full", dataset, user_ids, item_ids, stages, stats)


def temporal_split(events: pd.DataFrame, dataset: str, test_fraction: float = 0.2) -> Split:
    """Global time cut: the latest `test_fraction` of events is the future.

    Models see only the past. The "test" stage ranks warm users' future items
    (items seen before the cut) against the past catalog; the returned stats count
    the cold-start slices (new users, new items) that later stages evaluate with
    content features.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    cutoff = int(np.quantile(events["timestamp"].to_numpy(), 1 - test_fraction))
    past = events.loc[events["timestamp"] < cutoff]
    future = events.loc[events["timestamp"] >= cutoff]
    past_idx, user_ids, item_ids = _index(past)
    shape = (len(user_ids), len(item_ids))
    known_user = future["user_id"].isin(user_ids)
    known_item = future["item_id"].isin(item_ids)
    warm = future.loc[known_user & known_item]
    rows = np.searchsorted(user_ids, warm["user_id"].to_numpy())
    cols = np.searchsorted(item_ids, warm["item_id"].to_numpy())
    past_idx = past_idx.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    train = Interactions(_columns(past_idx), *shape)
    history = train.matrix()
    targets = _csr(rows, cols, shape)
    targets = targets - targets.multiply(history)  # re-watches of history are not targets
    targets.eliminate_zeros()
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    stats = {
        "protocol": f"temporal, last {test_fraction:.0%} of events",
        "cutoff": cutoff,
        "users": len(user_ids),
        "items": len(item_ids),
        "train_interactions": len(past),
        "warm_test_users": len(users),
        "warm_test_interactions": int(targets.nnz),
        "new_users": int(future.loc[~known_user, "user_id"].nunique()),
        "new_user_interactions": int((~known_user).sum()),
        "new_items": int(future.loc[~known_item, "item_id"].nunique()),
        "new_item_interactions": int((~known_item).sum()),
    }
    times = np.full(len(user_ids), cutoff, dtype=np.int64)
    stages = {"test": EvalStage("test", train, history, targets, users, times)}
    return Split("temporal", dataset, user_ids, item_ids, stages, stats)


def cold_start_slices(events: pd.DataFrame, cutoff: int) -> dict[str, pd.DataFrame]:
    """Future events (at or after `cutoff`) split by what the past knew of them."""
    past = events.loc[events["timestamp"] < cutoff]
    future = events.loc[events["timestamp"] >= cutoff]
    new_user = ~future["user_id"].isin(past["user_id"])
    new_item = ~future["item_id"].isin(past["item_id"])
    return {
        "warm": future.loc[~new_user & ~new_item],
        "new_users": future.loc[new_user],
        "new_items": future.loc[new_item],
    }
