"""Offline/online parity: the data a served-feed measurement needs, and its statistics.

The protocol (bench/online_parity.py runs it): every user's latest event is held out,
as in LOO-full. A random sample of users is removed from the catalog altogether: they
are the test users, and they reach the service only through its event API, so the
state the feed reads is what the nearline path built from their replayed history. The
models and the catalog's sources see neither any held-out event nor any test user's
event, so nothing about a test target can leak into the served page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from catalog.tables import Catalog


@dataclass(frozen=True)
class TestUser:
    user_id: int
    history: pd.DataFrame  # item_id, rating, timestamp; time order (the LOO "train" part)
    target: int  # the held-out latest item
    at: int  # when the target happened: the request time of the measurement


@dataclass(frozen=True)
class ParityData:
    catalog: Catalog  # served and trained on: no held-out event, no test user
    users: list[TestUser]


def held_out_last(events: pd.DataFrame) -> pd.Series:
    """Boolean mask of each user's latest event (LOO-full's test event; ties by item id,
    as in catalog.splits.loo_full)."""
    ordered = events.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    last = ordered.groupby("user_id").cumcount(ascending=False) == 0
    return last.reindex(events.index)


def parity_data(catalog: Catalog, n_users: int, seed: int = 0) -> ParityData:
    """The served catalog (named `<name>-parity`) and `n_users` test users."""
    events = catalog.events
    last = held_out_last(events)
    all_users = np.sort(events["user_id"].unique())
    if not 0 < n_users < all_users.size:
        raise ValueError(f"n_users must be in 1..{all_users.size - 1}, got {n_users}")
    chosen = np.sort(np.random.default_rng(seed).choice(all_users, n_users, replace=False))
    is_test_user = events["user_id"].isin(chosen)
    kept = events.loc[~last & ~is_test_user].reset_index(drop=True)
    users = []
    for user_id, rows in events.loc[is_test_user].groupby("user_id", sort=True):
        rows = rows.sort_values(["timestamp", "item_id"], kind="stable")
        target = rows.iloc[-1]
        history = rows.iloc[:-1][["item_id", "rating", "timestamp"]].reset_index(drop=True)
        users.append(
            TestUser(int(user_id), history, int(target["item_id"]), int(target["timestamp"]))
        )
    name = f"{catalog.name}-parity"
    version = f"{catalog.version}-parity-{n_users}u-s{seed}"
    served = Catalog(name, version, catalog.items, catalog.users, kept)
    return ParityData(served, users)


def rank_of(page: list[int], target: int, miss: int) -> int:
    return page.index(target) if target in page else miss


def ndcg_at(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-request NDCG@k of one held-out item at 0-based `ranks`."""
    ranks = np.asarray(ranks)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over users and its 95% paired bootstrap interval."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(lo), float(hi)
