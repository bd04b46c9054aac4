"""Reading one user's state for a request: batch history, fresh events, sign-up profile.

Redis is the source of truth for online features when configured. The service also keeps
an in-process snapshot of the batch features, so when Redis stops answering the reader
serves that snapshot (without the last minutes of events) and marks the state `stale`
instead of failing. A short circuit breaker makes an outage cost one timeout every few
seconds rather than one per request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import redis

from app.funnel import UserState
from app.metrics import Metrics
from catalog.tables import Catalog
from features import candidate_lists
from features.batch import UserHistory
from features.events import ENGAGEMENTS, EventType
from features.nearline import NearlineState, RecentEvent
from features.store import FeatureStore, InProcessFeatureStore
from ranking.cold_start import OnboardingPicks
from retrieval.base import RequestContext

log = logging.getLogger("marquee.service")


class Breaker:
    """After a Redis failure, skip Redis for `cooldown_s` (serve the snapshot)."""

    def __init__(self, cooldown_s: float = 2.0) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cooldown_s

    def reset(self) -> None:
        self._open_until = 0.0


class UserStateReader:
    """One read of a user's features per request, degraded to the snapshot when needed."""

    def __init__(
        self,
        store: FeatureStore,
        nearline: NearlineState,
        snapshot: InProcessFeatureStore,
        catalog: Catalog,
        metrics: Metrics,
        *,
        can_fail: bool,
    ) -> None:
        """`can_fail`: the stores are remote (Redis); in-process stores never fail."""
        self.store = store
        self.nearline = nearline
        self.snapshot = snapshot
        self.metrics = metrics
        self.can_fail = can_fail
        self.breaker = Breaker()
        self.demographics = catalog_demographics(catalog)

    def read(self, user_id: int) -> tuple[UserState, bool, dict | None]:
        """State, known, and the stored candidate lists' features (None when unreadable)."""
        long, recent, profile, lists = None, [], None, None
        groups = ["user_long", candidate_lists.GROUP]
        stale = self.can_fail and not self.breaker.available()
        if not stale:  # the same reads in both modes; only Redis can fail
            try:
                stored = self.store.get_user(user_id, groups)
                long, lists = stored.get("user_long"), stored.get(candidate_lists.GROUP)
                recent, profile = self.nearline.user_view(user_id)
                self.breaker.reset()
            except redis.RedisError as exc:
                self.breaker.trip()
                self.metrics.errors.labels(component="feature_store").inc()
                log.warning("feature store unavailable, serving the snapshot: %s", exc)
                stale = True
        if stale:
            long = self.snapshot.get_user(user_id, ["user_long"]).get("user_long")
        batch = UserHistory.from_features(long) if long else None
        state = compose_state(user_id, batch, recent, profile, self.demographics.get(user_id))
        state = replace(state, stale=stale)
        known = batch is not None or bool(recent) or profile is not None
        return state, known, lists


def request_of(state: UserState, now: int) -> RequestContext:
    return RequestContext(
        state.user_id,
        state.history,
        int(now),
        state.demographics,
        history_times=state.history_times,
    )


def compose_state(
    user_id: int,
    batch: UserHistory | None,
    recent: list[RecentEvent],
    profile: dict | None,
    catalog_demographics: dict | None,
) -> UserState:
    """Batch history + fresh engagement (deduplicated, latest kept, time order)."""
    engaged = [e for e in recent if e.type in ENGAGEMENTS]
    items = np.concatenate(
        [
            batch.items if batch else np.empty(0, np.int64),
            np.array([e.item_id for e in engaged], dtype=np.int64),
        ]
    )
    times = np.concatenate(
        [
            batch.times if batch else np.empty(0, np.int64),
            np.array([e.timestamp for e in engaged], dtype=np.int64),
        ]
    )
    # (time, item id): the batch history's order, and one that does not depend on the
    # order a store returns same-second events in (MovieLens rates many per second).
    order = np.lexsort((items, times))
    items, times = items[order], times[order]
    _, last_rev = np.unique(items[::-1], return_index=True)
    keep = np.sort(len(items) - 1 - last_rev)
    disliked = frozenset(e.item_id for e in recent if e.type is EventType.DISLIKE)
    keep = keep[~np.isin(items[keep], list(disliked))] if disliked else keep
    demographics = (profile or {}).get("demographics") or catalog_demographics
    picks = None
    if profile:
        picks = OnboardingPicks(
            tuple(int(i) for i in profile.get("liked_item_ids", [])),
            tuple(str(g) for g in profile.get("liked_genres", [])),
        )
    return UserState(
        user_id=user_id,
        history=items[keep],
        history_times=times[keep],
        demographics=demographics or None,
        picks=picks,
        disliked=disliked,
    )


def catalog_demographics(catalog: Catalog) -> dict[int, dict]:
    """Age, gender and occupation of catalog users (ml-100k has them; others do not)."""
    columns = [c for c in ("age", "gender", "occupation") if c in catalog.users.columns]
    if not columns:
        return {}
    frame = catalog.users.set_index("user_id")[columns]
    return {int(u): {k: v for k, v in row.items() if v == v} for u, row in frame.iterrows()}
