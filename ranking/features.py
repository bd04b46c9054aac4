"""Ranker features for one request's candidate pool, built in one vectorized pass.

Groups (see the ranking issue): retrieval (which sources found the item and at
what rank, the two-tower score), item (genres, era, age at request time,
popularity), user long-term (genre affinities, activity, demographics), user
short-term (genre mix and text centroid of the last items, time since the last
event), cross (affinity x item genres, text similarity) and context (hour and
weekday as angles). Everything comes from the request and static item arrays,
so the same code serves offline training and online scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.base import RequestContext
from retrieval.merge import Pool, PooledCandidate

SOURCES = ("two_tower", "covisit", "content", "trending", "popularity")
SHORT_TERM = 10  # items that make the "session"
SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True)
class ItemTable:
    """Static item arrays keyed by raw id (row i = item_ids[i], sorted)."""

    item_ids: np.ndarray
    genres: np.ndarray  # (n, g) float32 multi-hot
    years: np.ndarray  # (n,) float32, NaN when unknown
    log_popularity: np.ndarray  # (n,) log1p(train events)
    text: np.ndarray  # (n, d) float32, L2-normalized

    def rows(self, raw_ids: np.ndarray) -> np.ndarray:
        """Row of each raw id; -1 when unknown."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.item_ids, raw), 0, len(self.item_ids) - 1)
        return np.where(self.item_ids[pos] == raw, pos, -1)


def feature_names(n_genres: int) -> list[str]:
    names = [f"in_{s}" for s in SOURCES] + [f"rank_{s}" for s in SOURCES]
    names += ["two_tower_score", "n_sources", "log_popularity", "year", "age_years", "no_year"]
    names += [f"genre_{j}" for j in range(n_genres)]
    names += [f"affinity_x_genre_{j}" for j in range(n_genres)]
    names += ["affinity_dot", "session_dot", "text_sim_recent", "text_sim_long"]
    names += ["log_history", "since_last_log", "gender_m", "gender_f", "age_norm", "has_demo"]
    names += ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]
    return names


def retrieval_columns(
    pool: Sequence[PooledCandidate] | Pool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item ids, (n, len(SOURCES)) ranks with -1 = absent, two-tower scores)."""
    n = len(pool)
    if isinstance(pool, Pool):
        ranks = np.full((n, len(SOURCES)), -1, dtype=np.float32)
        tt_score = np.zeros(n, dtype=np.float32)
        for j, name in enumerate(pool.sources):
            if name in SOURCES:
                ranks[:, SOURCES.index(name)] = pool.ranks[:, j]
            if name == "two_tower":
                tt_score = pool.scores[:, j].astype(np.float32)
        return pool.item_ids, ranks, tt_score
    # one comprehension per source: ~5x faster than a nested Python loop over candidates
    ranks = np.array(
        [[c.ranks.get(source, -1) for c in pool] for source in SOURCES], dtype=np.float32
    ).T.reshape(n, len(SOURCES))
    tt_score = np.array([c.scores.get("two_tower", 0.0) for c in pool], dtype=np.float32)
    return np.array([c.item_id for c in pool], dtype=np.int64), ranks, tt_score


@dataclass(frozen=True)
class UserSide:
    """What the features take from the user's history alone: the same for every
    candidate and for every request until the history changes, so it can be cached."""

    n_history: int  # history items the table knows
    affinity: np.ndarray  # (g,) mean genre vector of the whole history
    session: np.ndarray  # (g,) of the last SHORT_TERM items
    recent_text: np.ndarray  # (d,) unit text centroid of the last SHORT_TERM items
    long_text: np.ndarray  # (d,) of the whole history


def user_side(history: np.ndarray, items: ItemTable) -> UserSide:
    hist_rows = items.rows(np.asarray(history, dtype=np.int64))
    hist_rows = hist_rows[hist_rows >= 0]
    if not hist_rows.size:
        g, d = items.genres.shape[1], items.text.shape[1]
        zeros_g, zeros_d = np.zeros(g, dtype=np.float32), np.zeros(d, dtype=np.float32)
        return UserSide(0, zeros_g, zeros_g, zeros_d, zeros_d)
    recent = hist_rows[-SHORT_TERM:]
    return UserSide(
        int(hist_rows.size),
        items.genres[hist_rows].mean(axis=0),
        items.genres[recent].mean(axis=0),
        _unit(items.text[recent].mean(axis=0)),
        _unit(items.text[hist_rows].mean(axis=0)),
    )


def build_features(
    ctx: RequestContext,
    pool: Sequence[PooledCandidate] | Pool,
    items: ItemTable,
    user: UserSide | None = None,
) -> np.ndarray:
    """(len(pool), n_features) float32 matrix in `feature_names` order; `user` is
    `user_side(ctx.history, items)` when the caller has it already.

    Written column block by column block into one preallocated matrix: one pass, no
    per-candidate Python and no concatenation of a dozen temporaries.
    """
    user = user or user_side(ctx.history, items)
    n = len(pool)
    n_src, g = len(SOURCES), items.genres.shape[1]
    item_ids, ranks, tt_score = retrieval_columns(pool)
    cand_rows = items.rows(item_ids)
    known = cand_rows >= 0
    safe = np.where(known, cand_rows, 0)
    out = np.empty((n, 2 * n_src + 6 + 2 * g + 14), dtype=np.float32)
    member = out[:, :n_src]
    np.greater_equal(ranks, 0, out=member, casting="unsafe")
    out[:, n_src : 2 * n_src] = np.where(ranks >= 0, 1.0 / (1.0 + np.maximum(ranks, 0)), 0.0)
    col = 2 * n_src
    out[:, col] = tt_score
    out[:, col + 1] = member.sum(axis=1) / n_src
    out[:, col + 2] = (items.log_popularity[safe] * known) / 8.0
    years = items.years[safe]
    request_year = 1970 + ctx.timestamp / SECONDS_PER_YEAR
    no_year = np.isnan(years) | ~known
    out[:, col + 3] = np.where(no_year, 0.0, (years - 1990.0) / 30.0)
    out[:, col + 4] = np.where(no_year, 0.0, np.clip(request_year - years, 0, 100) / 30.0)
    out[:, col + 5] = no_year
    col += 6
    genres = out[:, col : col + g]
    np.multiply(items.genres[safe], known[:, None], out=genres)
    np.multiply(genres, user.affinity[None, :], out=out[:, col + g : col + 2 * g])
    col += 2 * g
    out[:, col] = genres @ user.affinity
    out[:, col + 1] = genres @ user.session
    cand_text = items.text[safe]
    out[:, col + 2] = (cand_text @ user.recent_text) * known
    out[:, col + 3] = (cand_text @ user.long_text) * known
    out[:, col + 4 :] = _user_row(ctx, user)
    return out


def _user_row(ctx: RequestContext, user: UserSide) -> np.ndarray:
    """The request's user and context columns, the same for every candidate."""
    demo = ctx.demographics or {}
    gender = str(demo.get("gender", ""))
    age_years = demo.get("age")
    times = ctx.history_times
    since_last = (
        np.log1p(max(ctx.timestamp - int(times[-1]), 0) / 60.0) / 10.0
        if times is not None and len(times)
        else 0.0
    )
    hour = (ctx.timestamp // 3600) % 24
    weekday = (ctx.timestamp // 86400 + 3) % 7
    return np.array(
        [
            np.log1p(user.n_history) / 5.0,
            since_last,
            float(gender == "M"),
            float(gender == "F"),
            (float(age_years) / 50.0) if age_years is not None else 0.0,
            float(bool(demo)),
            np.sin(2 * np.pi * hour / 24),
            np.cos(2 * np.pi * hour / 24),
            np.sin(2 * np.pi * weekday / 7),
            np.cos(2 * np.pi * weekday / 7),
        ],
        dtype=np.float32,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)
