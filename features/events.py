"""Feedback events: the typed schema, and the durable log they are appended to.

Why an idempotency key per event and an atomic append: clients retry on timeouts,
so the same event can arrive twice. The Redis log runs one Lua script per batch
that, for each event, claims its key with `SET NX` and appends it to the stream in
the same atomic step, so an event is either stored exactly once or reported as a
duplicate, and an acknowledged event is never lost to a crash between the two.

The in-process log is the embedded default when no Redis is configured; it keeps
the same contract for one process (nothing survives a restart).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Protocol

from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEDUP_TTL_S = 7 * 24 * 3600  # a retry arriving later than this is stored again
MAX_EVENTS_IN_PROCESS = 500_000  # the embedded log keeps the newest this many events
MAX_IDS_IN_PROCESS = 2_000_000  # idempotency keys it remembers (each for DEDUP_TTL_S)


class EventType(StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    WATCH = "watch"
    COMPLETE = "complete"
    LIKE = "like"
    DISLIKE = "dislike"
    RATING = "rating"


# Interactions that mean "the user engaged with this title": they join the history.
ENGAGEMENTS = frozenset(
    {EventType.CLICK, EventType.WATCH, EventType.COMPLETE, EventType.LIKE, EventType.RATING}
)


class Event(BaseModel):
    """One piece of feedback as a client sends it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"event_id": "3f1c9a2e-like-318", "type": "like", "user_id": 1, "item_id": 318},
                {
                    "event_id": "3f1c9a2e-rate-318",
                    "type": "rating",
                    "user_id": 1,
                    "item_id": 318,
                    "rating": 4.5,
                    "timestamp": 1764000000,
                },
            ]
        },
    )

    event_id: str = Field(
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="Idempotency key chosen by the client (e.g. a UUID); a retry with the "
        "same key is acknowledged as a duplicate and not applied twice.",
    )
    type: EventType
    user_id: int = Field(ge=1, le=2**62)
    item_id: int = Field(ge=1, le=2**62)
    timestamp: int | None = Field(
        default=None,
        ge=0,
        le=2**40,
        description="Unix seconds when it happened; the server's clock when omitted.",
    )
    rating: float | None = Field(default=None, ge=0.5, le=5.0, description="Only for `rating`.")
    request_id: str | None = Field(
        default=None, max_length=64, description="The feed response that showed the item."
    )
    position: int | None = Field(default=None, ge=0, le=1000, description="0-based slot.")

    @model_validator(mode="after")
    def _rating_only_on_ratings(self) -> Event:
        if self.type is EventType.RATING and self.rating is None:
            raise ValueError("a rating event needs `rating` (0.5 to 5.0)")
        if self.type is not EventType.RATING and self.rating is not None:
            raise ValueError(f"`rating` is only allowed on rating events, not {self.type.value}")
        return self


class StoredEvent(Event):
    """An accepted event as the log keeps it: server time and experiment variant stamped."""

    timestamp: int = Field(ge=0, le=2**40)
    received_at: float
    variant: str = ""

    @classmethod
    def accept(cls, event: Event, variant: str, now: float | None = None) -> StoredEvent:
        now = time.time() if now is None else now
        data = event.model_dump()
        data["timestamp"] = event.timestamp if event.timestamp is not None else int(now)
        return cls(**data, received_at=now, variant=variant)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredEvent:
        return cls.model_validate_json(raw)


class EventLog(Protocol):
    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        """Store each new event once; True where stored, False for a duplicate key."""
        ...

    def read_all(self) -> Iterator[StoredEvent]:
        """Every stored event, oldest first (for reports, not the hot path)."""
        ...


# KEYS[1] = stream; ARGV[1] = dedup key prefix, ARGV[2] = dedup TTL, then (id, json) pairs
_APPEND_LUA = """
local out = {}
for i = 3, #ARGV, 2 do
  local claimed = redis.call('SET', ARGV[1] .. ARGV[i], '1', 'NX', 'EX', tonumber(ARGV[2]))
  if claimed then
    redis.call('XADD', KEYS[1], '*', 'event', ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


def stream_key(prefix: str) -> str:
    return f"{prefix}:events"


class RedisEventLog:
    """A Redis Stream of JSON events plus one short-lived dedup key per idempotency key."""

    def __init__(self, client, prefix: str = "marquee", dedup_ttl_s: int = DEDUP_TTL_S) -> None:
        self.client = client
        self.stream = stream_key(prefix)
        self.dedup_prefix = f"{prefix}:event-id:"
        self.dedup_ttl_s = dedup_ttl_s
        self._append = client.register_script(_APPEND_LUA)

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        if not events:
            return []
        args: list[str | int] = [self.dedup_prefix, self.dedup_ttl_s]
        for event in events:
            args += [event.event_id, event.to_json()]
        return [bool(flag) for flag in self._append(keys=[self.stream], args=args)]

    def read_all(self, batch: int = 1000) -> Iterator[StoredEvent]:
        start = "-"
        while True:
            entries = self.client.xrange(self.stream, min=start, max="+", count=batch)
            for _, fields in entries:
                yield StoredEvent.from_json(fields[b"event"])
            if len(entries) < batch:
                return
            last = entries[-1][0].decode()
            start = "(" + last


class InProcessEventLog:
    """Deque-backed log with the same contract, for the embedded single-process mode.

    Why bounded: the embedded server can run for weeks. It keeps the newest `max_events`
    events (older ones fall off, as a trimmed Redis stream's would) and remembers
    idempotency keys for `dedup_ttl_s`, as the Redis log does, up to `max_ids` keys: an
    event accepted is stored once, and a retry inside that window is recognised.
    """

    def __init__(
        self,
        max_events: int = MAX_EVENTS_IN_PROCESS,
        dedup_ttl_s: float = DEDUP_TTL_S,
        max_ids: int = MAX_IDS_IN_PROCESS,
    ) -> None:
        self._events: deque[str] = deque(maxlen=max_events)
        self._ids: TTLCache[str, bool] = TTLCache(max_ids, dedup_ttl_s)
        self._lock = threading.Lock()

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        out = []
        with self._lock:
            for event in events:
                fresh = event.event_id not in self._ids
                if fresh:
                    self._ids[event.event_id] = True
                    self._events.append(event.to_json())
                out.append(fresh)
        return out

    def read_all(self) -> Iterator[StoredEvent]:
        with self._lock:
            snapshot = list(self._events)
        for raw in snapshot:
            yield StoredEvent.from_json(raw)

    def __len__(self) -> int:
        return len(self._events)
