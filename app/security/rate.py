"""Abuse limits: request budgets per key or user, and the LLM turns per user per day.

The `limits` library's moving window, in Redis when the service has one (limits then
hold across processes and workers), in memory otherwise. Redis failing opens the gate
(logged): a rate limiter must not turn a Redis blip into an outage of every route.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerDay, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("marquee.security")
BUCKETS = ("chat", "events", "default", "login")


class RateLimits:
    def __init__(
        self,
        budgets: dict[str, str],
        llm_turns_per_day: int,
        redis_url: str | None = None,
        prefix: str = "marquee",
    ) -> None:
        unknown = set(budgets) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown rate buckets {sorted(unknown)}")
        self.items: dict[str, RateLimitItem | None] = {
            name: parse(spec) if spec.strip() else None for name, spec in budgets.items()
        }
        self.llm_day = RateLimitItemPerDay(llm_turns_per_day) if llm_turns_per_day else None
        storage: Storage = (
            RedisStorage(redis_url, key_prefix=f"{prefix}:limits") if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)

    def _hit(self, item: RateLimitItem, *who: str) -> float | None:
        try:
            if self._limiter.hit(item, *who):
                return None
            reset = self._limiter.get_window_stats(item, *who).reset_time
        except Exception as exc:  # redis down: fail open, say so
            log.warning("rate limiter unavailable, request let through: %s", exc)
            return None
        return max(1.0, math.ceil(reset - time.time()))

    def check(self, bucket: str, who: str) -> float | None:
        """None when `who` may go on, else the seconds to wait (for Retry-After)."""
        item = self.items.get(bucket)
        return None if item is None else self._hit(item, bucket, who)

    def llm_turn(self, who: str) -> bool:
        """Spend one of `who`'s LLM turns today; False when today's are spent."""
        return self.llm_day is None or self._hit(self.llm_day, "llm-day", who) is None
