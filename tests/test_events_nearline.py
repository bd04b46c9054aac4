"""Event schema, event logs and nearline state: one suite for Redis (real) and in-process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from features.events import Event, EventLog, InProcessEventLog, RedisEventLog, StoredEvent
from features.nearline import RECENT_N, InProcessNearline, NearlineState, RedisNearline

from .redis_util import redis_prefix

NOW = int(time.time())  # Redis expires trend buckets on the real clock


def stored(i: int, kind: str = "like", user: int = 1, item: int = 10, ts: int = NOW, **kw):
    event = Event(
        event_id=f"event-{i:06d}", type=kind, user_id=user, item_id=item, timestamp=ts, **kw
    )
    return StoredEvent.accept(event, variant="control", now=ts + 1)


@pytest.fixture(params=["in-process", "redis"])
def log(request: pytest.FixtureRequest) -> Iterator[EventLog]:
    if request.param == "in-process":
        yield InProcessEventLog()
        return
    with redis_prefix() as (client, prefix):
        yield RedisEventLog(client, prefix)


@pytest.fixture(params=["in-process", "redis"])
def state(request: pytest.FixtureRequest) -> Iterator[NearlineState]:
    if request.param == "in-process":
        yield InProcessNearline()
        return
    with redis_prefix() as (client, prefix):
        yield RedisNearline(client, prefix)


def test_rating_events_need_a_rating_and_others_refuse_one() -> None:
    with pytest.raises(ValidationError, match="needs `rating`"):
        Event(event_id="abcdefgh", type="rating", user_id=1, item_id=2)
    with pytest.raises(ValidationError, match="only allowed on rating"):
        Event(event_id="abcdefgh", type="like", user_id=1, item_id=2, rating=4.0)
    with pytest.raises(ValidationError):
        Event(event_id="no spaces!", type="like", user_id=1, item_id=2)
    with pytest.raises(ValidationError):
        Event(event_id="abcdefgh", type="purchase", user_id=1, item_id=2)


def test_accept_stamps_server_time_and_variant() -> None:
    event = Event(event_id="abcdefgh", type="click", user_id=3, item_id=4)
    got = StoredEvent.accept(event, variant="diverse", now=123.5)
    assert (got.timestamp, got.received_at, got.variant) == (123, 123.5, "diverse")
    assert StoredEvent.from_json(got.to_json()) == got


def test_log_stores_each_idempotency_key_once_in_order(log: EventLog) -> None:
    first = [stored(i) for i in range(5)]
    assert log.append(first) == [True] * 5
    retry = [stored(3), stored(5), stored(0)]
    assert log.append(retry) == [False, True, False]
    assert [e.event_id for e in log.read_all()] == [f"event-{i:06d}" for i in range(6)]


def test_concurrent_retries_store_an_event_exactly_once(log: EventLog) -> None:
    events = [stored(i) for i in range(50)]
    results: list[list[bool]] = []

    def send() -> None:
        results.append(log.append(events))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [sum(col) for col in zip(*results, strict=True)] == [1] * 50
    assert len(list(log.read_all())) == 50


def test_apply_is_idempotent_and_counts_by_type(state: NearlineState) -> None:
    batch = [
        stored(0, "impression"),
        stored(1, "impression"),
        stored(2, "click"),
        stored(3, "like", item=11),
        stored(4, "impression", item=11),
    ]
    assert state.apply(batch) == 5
    assert state.apply(batch) == 0  # a redelivered batch changes nothing
    counts = state.counters(["impression", "click", "like", "watch"])
    assert counts == {
        "impression": {10: 2.0, 11: 1.0},
        "click": {10: 1.0},
        "like": {11: 1.0},
        "watch": {},
    }


def test_recent_keeps_latest_engagements_without_impressions(state: NearlineState) -> None:
    events = [stored(i, "watch", item=100 + i, ts=NOW + i) for i in range(RECENT_N + 5)]
    events.append(stored(9999, "impression", item=5, ts=NOW + 10_000))
    events.append(stored(9998, "rating", item=7, ts=NOW - 1, rating=4.5))
    state.apply(events[::-1])  # arrival order does not matter, event time does
    recent = state.recent(1)
    assert len(recent) == RECENT_N
    assert [r.item_id for r in recent[-2:]] == [100 + RECENT_N + 3, 100 + RECENT_N + 4]
    assert all(r.item_id != 5 for r in recent)
    assert state.recent(2) == []


def test_trending_counts_the_last_day_weighted_by_engagement(state: NearlineState) -> None:
    state.apply(
        [
            stored(0, "click", item=1),
            stored(1, "like", item=2),
            stored(2, "watch", item=3),
            stored(3, "watch", item=3, user=2),
            stored(4, "watch", item=3, user=3),
            stored(5, "impression", item=4),
            stored(6, "watch", item=9, ts=NOW - 2 * 86_400),
        ]
    )
    ranked = state.trending(NOW + 60)
    assert ranked[:3] == [(3, 3.0), (2, 2.0), (1, 1.0)]
    assert {i for i, _ in ranked} == {1, 2, 3}  # no impressions, nothing older than a day
    assert state.trending(NOW + 3 * 86_400) == []


def test_profiles_round_trip_and_new_ids_are_unique(state: NearlineState) -> None:
    state.put_profile(5, {"liked_genres": ["Comedy"], "liked_item_ids": [1]})
    assert state.get_profile(5) == {"liked_genres": ["Comedy"], "liked_item_ids": [1]}
    assert state.get_profile(6) is None
    state.apply([stored(1, "like", user=5, item=42)])
    recent, profile = state.user_view(5)
    assert [r.item_id for r in recent] == [42] and profile == state.get_profile(5)
    ids = [state.new_user_id(1000) for _ in range(3)]
    assert ids == [1001, 1002, 1003]
