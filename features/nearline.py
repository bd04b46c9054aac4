"""Nearline state: what the event stream changes between two feed requests.

- short-term user features: the user's latest events (last N, impressions left out
  so a page view cannot push real engagement out), from which the feed takes its
  fresh history, its exclusions and the session genre mix;
- item counters per event type (impressions and clicks are the bandit's posterior
  counts, so CTR is clicks / impressions);
- trending: engagement per item in hourly buckets that expire after a day;
- onboarding profiles of users who signed up through the API.

Why apply in one Lua script per batch: the worker delivers at least once, so the
same event can be applied twice after a crash. The script claims each event's
`applied` key and makes all of its updates in the same atomic step, so a replayed
event is skipped and a half-applied event cannot exist.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache, TTLCache

from features.events import EventType, StoredEvent
from features.store import SCHEMA_VERSION

RECENT_N = 200
APPLIED_TTL_S = 7 * 24 * 3600
# Embedded-mode limits (the Redis store bounds the same state with key TTLs and trims).
MAX_USERS_IN_PROCESS = 100_000  # least recently active users' recent events are dropped
MAX_APPLIED_IDS = 2_000_000  # applied event ids kept (each also expires after APPLIED_TTL_S)
TREND_HOURS = 24
# A Redis trend bucket lives this long after its last write. Relative, not "its hour plus a
# day" on Redis's wall clock: on the data clock (a historical catalog) event hours are
# years old, and an absolute expiry would delete each bucket as it is written.
TREND_TTL_S = 2 * 86_400
TREND_WEIGHTS: dict[str, float] = {
    EventType.CLICK: 1.0,
    EventType.WATCH: 1.0,
    EventType.COMPLETE: 1.0,
    EventType.LIKE: 2.0,
    EventType.RATING: 1.0,
}


@dataclass(frozen=True)
class RecentEvent:
    item_id: int
    type: EventType
    timestamp: int
    rating: float | None = None


class NearlineState(Protocol):
    def apply(self, events: Sequence[StoredEvent]) -> int:
        """Apply each event once; returns how many were new (replays are skipped)."""
        ...

    def _expire_trend_buckets(self) -> None:
        """Drop hours older than the trend window counted back from the newest bucket."""
        if len(self._trend) > TREND_HOURS:
            oldest = max(self._trend) - TREND_HOURS + 1
            for hour in [h for h in self._trend if h < oldest]:
                del self._trend[hour]

    def recent(self, user_id: int) -> list[RecentEvent]:
        """The user's latest non-impression events, oldest first."""
        ...

    def counters(self, types: Iterable[str]) -> dict[str, dict[int, float]]:
        """type -> item -> count, for every item with at least one such event."""
        ...

    def trending(self, now: float, k: int = 200) -> list[tuple[int, float]]:
        """The k items with most weighted engagement over the last TREND_HOURS, best first."""
        ...

    def put_profile(self, user_id: int, profile: dict) -> None: ...

    def get_profile(self, user_id: int) -> dict | None: ...

    def user_view(self, user_id: int) -> tuple[list[RecentEvent], dict | None]:
        """`recent` and `get_profile` together (one round trip in Redis)."""
        ...

    def new_user_id(self, floor: int) -> int:
        """A fresh user id above `floor` (the largest id the catalog knows)."""
        ...


def _hour(ts: float) -> int:
    return int(ts // 3600)


def _trend_hours(now: float) -> list[int]:
    current = _hour(now)
    return list(range(current - TREND_HOURS + 1, current + 1))


_APPLY_LUA = """
local root = ARGV[1]
local ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local trend_ttl = TREND_TTL_S
-- Every key's type is checked before the first write: a script that fails halfway keeps
-- its earlier writes (Redis does not roll scripts back), and an event marked applied
-- whose counts were never written would be lost for good when the worker retries.
local expected = {[root .. ':updated'] = 'hash'}
for i = 5, #ARGV, 7 do
  local id, user, typ, ts = ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 4]
  expected[root .. ':applied:' .. id] = 'string'
  expected[root .. ':recent:' .. user] = 'zset'
  expected[root .. ':count:' .. typ] = 'hash'
  expected[root .. ':trend:' .. math.floor(tonumber(ts) / 3600)] = 'zset'
end
for key, kind in pairs(expected) do
  local have = redis.call('TYPE', key).ok
  if have ~= 'none' and have ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. have .. ', not a ' .. kind)
  end
end
local applied = 0
for i = 5, #ARGV, 7 do
  local id, user, item, typ = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ts, rating, weight = ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  if redis.call('SET', root .. ':applied:' .. id, '1', 'NX', 'EX', ttl) then
    if typ ~= 'impression' then
      local recent = root .. ':recent:' .. user
      redis.call('ZADD', recent, ts, id .. '|' .. item .. '|' .. typ .. '|' .. rating)
      redis.call('ZREMRANGEBYRANK', recent, 0, -(keep + 1))
    end
    redis.call('HINCRBY', root .. ':count:' .. typ, item, 1)
    if weight > 0 then
      local hour = math.floor(tonumber(ts) / 3600)
      local trend = root .. ':trend:' .. hour
      redis.call('ZINCRBY', trend, weight, item)
      redis.call('EXPIRE', trend, trend_ttl)
    end
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('HSET', root .. ':updated', 'user_short', ARGV[4], 'item_dynamic', ARGV[4])
end
return applied
""".replace("TREND_TTL_S", str(TREND_TTL_S))


def _parse_recent(member: bytes, score: float) -> RecentEvent:
    _, item, kind, rating = member.decode().split("|")
    return RecentEvent(int(item), EventType(kind), int(score), float(rating) if rating else None)


class RedisNearline:
    """Nearline state under the feature store's versioned root `<prefix>:v<schema>`."""

    def __init__(self, client, prefix: str = "marquee") -> None:
        self.client = client
        self.root = f"{prefix}:v{SCHEMA_VERSION}"
        self._apply = client.register_script(_APPLY_LUA)

    def apply(self, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        args: list[str | int | float] = [self.root, APPLIED_TTL_S, RECENT_N, repr(time.time())]
        for e in events:
            rating = "" if e.rating is None else repr(e.rating)
            weight = TREND_WEIGHTS.get(e.type, 0.0)
            args += [e.event_id, e.user_id, e.item_id, e.type.value, e.timestamp, rating, weight]
        return int(self._apply(args=args))

    def _expire_trend_buckets(self) -> None:
        """Drop hours older than the trend window counted back from the newest bucket."""
        if len(self._trend) > TREND_HOURS:
            oldest = max(self._trend) - TREND_HOURS + 1
            for hour in [h for h in self._trend if h < oldest]:
                del self._trend[hour]

    def recent(self, user_id: int) -> list[RecentEvent]:
        rows = self.client.zrange(f"{self.root}:recent:{int(user_id)}", 0, -1, withscores=True)
        return [_parse_recent(member, score) for member, score in rows]

    def user_view(self, user_id: int) -> tuple[list[RecentEvent], dict | None]:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(f"{self.root}:recent:{int(user_id)}", 0, -1, withscores=True)
        pipe.get(f"{self.root}:profile:{int(user_id)}")
        rows, raw = pipe.execute()
        recent = [_parse_recent(member, score) for member, score in rows]
        return recent, None if raw is None else json.loads(raw)

    def counters(self, types: Iterable[str]) -> dict[str, dict[int, float]]:
        types = list(types)
        pipe = self.client.pipeline(transaction=False)
        for kind in types:
            pipe.hgetall(f"{self.root}:count:{kind}")
        return {
            kind: {int(k): float(v) for k, v in raw.items()}
            for kind, raw in zip(types, pipe.execute(), strict=True)
        }

    def trending(self, now: float, k: int = 200) -> list[tuple[int, float]]:
        keys = [f"{self.root}:trend:{h}" for h in _trend_hours(now)]
        rows = self.client.zunion(keys, withscores=True)  # ascending by score
        return [(int(item), float(score)) for item, score in reversed(rows[-k:])]

    def put_profile(self, user_id: int, profile: dict) -> None:
        self.client.set(f"{self.root}:profile:{int(user_id)}", json.dumps(profile))

    def get_profile(self, user_id: int) -> dict | None:
        raw = self.client.get(f"{self.root}:profile:{int(user_id)}")
        return None if raw is None else json.loads(raw)

    def new_user_id(self, floor: int) -> int:
        key = f"{self.root}:user-seq"
        self.client.set(key, int(floor), nx=True)
        return int(self.client.incr(key))


class InProcessNearline:
    """The same state in dicts, for the embedded mode and as the test suite's twin.

    Why bounded: the embedded server runs for weeks in one process. Recent events and
    profiles are kept for the `max_users` most recently active users (LRU), applied event
    ids for `APPLIED_TTL_S` (the replay window, as in Redis) up to `max_applied_ids`, and
    trend buckets only for the last TREND_HOURS hours of event time. Counters hold one
    number per catalog item and type, so they are bounded by the catalog.
    """

    def __init__(
        self,
        max_users: int = MAX_USERS_IN_PROCESS,
        max_applied_ids: int = MAX_APPLIED_IDS,
        applied_ttl_s: float = APPLIED_TTL_S,
    ) -> None:
        self._applied: TTLCache[str, bool] = TTLCache(max_applied_ids, applied_ttl_s)
        self._recent: LRUCache[int, list[tuple[int, str, RecentEvent]]] = LRUCache(max_users)
        self._counts: dict[str, Counter[int]] = defaultdict(Counter)
        self._trend: dict[int, Counter[int]] = defaultdict(Counter)
        self._profiles: LRUCache[int, str] = LRUCache(max_users)
        self._seq: int | None = None
        self.updated: dict[str, float] = {}
        self._lock = threading.Lock()

    def apply(self, events: Sequence[StoredEvent]) -> int:
        applied = 0
        with self._lock:
            for e in events:
                if e.event_id in self._applied:
                    continue
                self._applied[e.event_id] = True
                if e.type is not EventType.IMPRESSION:
                    rows = self._recent.get(e.user_id)
                    if rows is None:
                        rows = self._recent[e.user_id] = []
                    rows.append(
                        (
                            e.timestamp,
                            e.event_id,
                            RecentEvent(e.item_id, e.type, e.timestamp, e.rating),
                        )
                    )
                    rows.sort(key=lambda row: (row[0], row[1]))
                    del rows[:-RECENT_N]
                self._counts[e.type.value][e.item_id] += 1
                weight = TREND_WEIGHTS.get(e.type, 0.0)
                if weight > 0:
                    self._trend[_hour(e.timestamp)][e.item_id] += weight
                applied += 1
            self._expire_trend_buckets()
            if applied:
                now = time.time()
                self.updated.update(user_short=now, item_dynamic=now)
        return applied

    def _expire_trend_buckets(self) -> None:
        """Drop hours older than the trend window counted back from the newest bucket."""
        if len(self._trend) > TREND_HOURS:
            oldest = max(self._trend) - TREND_HOURS + 1
            for hour in [h for h in self._trend if h < oldest]:
                del self._trend[hour]

    def recent(self, user_id: int) -> list[RecentEvent]:
        with self._lock:
            return [row[2] for row in self._recent.get(int(user_id), [])]

    def counters(self, types: Iterable[str]) -> dict[str, dict[int, float]]:
        with self._lock:
            return {t: {i: float(c) for i, c in self._counts.get(t, {}).items()} for t in types}

    def trending(self, now: float, k: int = 200) -> list[tuple[int, float]]:
        total: Counter[int] = Counter()
        with self._lock:
            for hour in _trend_hours(now):
                total.update(self._trend.get(hour, {}))
        return [(i, float(s)) for i, s in sorted(total.items(), key=lambda x: (-x[1], -x[0]))[:k]]

    def put_profile(self, user_id: int, profile: dict) -> None:
        with self._lock:
            self._profiles[int(user_id)] = json.dumps(profile)

    def get_profile(self, user_id: int) -> dict | None:
        with self._lock:
            raw = self._profiles.get(int(user_id))
        return None if raw is None else json.loads(raw)

    def user_view(self, user_id: int) -> tuple[list[RecentEvent], dict | None]:
        return self.recent(user_id), self.get_profile(user_id)

    def new_user_id(self, floor: int) -> int:
        with self._lock:
            self._seq = max(self._seq or 0, int(floor)) + 1
            return self._seq
