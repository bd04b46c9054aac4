"""The one clock every request-time feature, rule and parser reads.

Why a clock object: a historical dataset (MovieLens ends in 2018) served on the wall
clock makes every user years stale: time since the last event, the two-tower's gap
bucket, item ages, "recent" in chat and the freshness rule all leave the range the
models were trained and tuned on. Serving such a catalog on its own data time, its
last event plus the time elapsed since the service started, keeps the request inside
that range while time still moves (a like now is seconds after the previous one, not
eight years). Production data, whose events are current, runs on the wall clock.

`ClockSpec` is what a bundle records and a setting overrides: the mode and the data
end it was trained up to. `clock_for` turns it into a running clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, Protocol

ClockMode = Literal["wall", "data"]
# A catalog whose last event is older than this is historical: it is served on data time.
STALE_AFTER_S = 30 * 86_400


class Clock(Protocol):
    mode: ClockMode

    def now(self) -> float:
        """Seconds since the epoch, as the data sees them."""
        ...


@dataclass(frozen=True)
class WallClock:
    mode: ClockMode = "wall"

    def now(self) -> float:
        return time.time()


@dataclass(frozen=True)
class DataClock:
    """The dataset's last event plus the time elapsed since `started` (wall seconds)."""

    data_end: float
    started: float
    mode: ClockMode = "data"

    def now(self) -> float:
        return self.data_end + max(time.time() - self.started, 0.0)


@dataclass(frozen=True)
class FixedClock:
    """A clock that never moves: offline replays at a recorded time, and tests."""

    at: float
    mode: ClockMode = "data"

    def now(self) -> float:
        return self.at


@dataclass(frozen=True)
class ClockSpec:
    mode: ClockMode
    data_end: int  # the last event (unix seconds) the bundle's models were trained on

    @classmethod
    def for_data(cls, data_end: int, wall_now: float | None = None) -> ClockSpec:
        """Data time for a historical dataset, wall time for current data."""
        wall = time.time() if wall_now is None else wall_now
        return cls("data" if wall - data_end > STALE_AFTER_S else "wall", int(data_end))

    def to_dict(self) -> dict[str, str | int]:
        return {"mode": self.mode, "data_end": self.data_end}

    @classmethod
    def from_dict(cls, raw: dict) -> ClockSpec:
        mode = raw.get("mode", "wall")
        if mode not in ("wall", "data"):
            raise ValueError(f"unknown clock mode {mode!r} (wall or data)")
        return cls(mode, int(raw.get("data_end", 0)))


def clock_for(spec: ClockSpec, override: str | None = None) -> Clock:
    """The running clock: `override` ("wall", "data" or None/"auto") beats the spec's mode."""
    mode = spec.mode if override in (None, "", "auto") else override
    if mode == "wall":
        return WallClock()
    if mode == "data":
        return DataClock(float(spec.data_end), time.time())
    raise ValueError(f"unknown clock {override!r}: auto, wall or data")


def today(clock: Clock) -> date:
    """The clock's calendar day (UTC)."""
    return datetime.fromtimestamp(clock.now(), UTC).date()
