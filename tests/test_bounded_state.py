"""The embedded (no-Redis) stores stay bounded over a long run and still dedup in-window."""

from __future__ import annotations

import time

from features.events import InProcessEventLog
from features.nearline import TREND_HOURS, InProcessNearline

from .test_events_nearline import NOW, stored


def test_event_log_keeps_the_newest_events_only() -> None:
    log = InProcessEventLog(max_events=5)
    assert all(log.append([stored(i) for i in range(12)]))
    assert len(log) == 5
    assert [e.event_id for e in log.read_all()] == [stored(i).event_id for i in range(7, 12)]


def test_event_log_dedups_inside_the_window_and_forgets_after_it() -> None:
    log = InProcessEventLog(dedup_ttl_s=0.2)
    assert log.append([stored(1), stored(1)]) == [True, False]
    assert log.append([stored(1)]) == [False]  # a retry inside the window
    time.sleep(0.3)
    assert log.append([stored(1)]) == [True]  # past the window, as in Redis (key TTL)


def test_event_log_remembers_a_bounded_number_of_keys() -> None:
    log = InProcessEventLog(max_ids=3)
    log.append([stored(i) for i in range(10)])
    assert len(log._ids) == 3


def test_nearline_keeps_state_for_the_most_recently_active_users() -> None:
    state = InProcessNearline(max_users=3)
    for user in range(1, 6):
        state.apply([stored(user, user=user, item=100 + user)])
    state.apply([stored(99, user=3, item=7)])  # user 3 is active again
    kept = [u for u in range(1, 6) if state.recent(u)]
    assert kept == [3, 4, 5]
    assert [e.item_id for e in state.recent(3)] == [103, 7]


def test_nearline_applied_ids_expire_and_are_bounded() -> None:
    state = InProcessNearline(max_applied_ids=2, applied_ttl_s=0.2)
    assert state.apply([stored(1), stored(1)]) == 1
    assert state.apply([stored(1)]) == 0
    time.sleep(0.3)
    assert state.apply([stored(1)]) == 1
    state.apply([stored(i) for i in range(2, 10)])
    assert len(state._applied) <= 2


def test_nearline_trend_buckets_outside_the_window_expire() -> None:
    state = InProcessNearline()
    for hour in range(3 * TREND_HOURS):
        state.apply([stored(hour, ts=NOW + hour * 3600)])
    assert len(state._trend) == TREND_HOURS
    latest = NOW + (3 * TREND_HOURS - 1) * 3600
    assert state.trending(latest)  # the last day is still counted
