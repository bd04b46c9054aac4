"""Chat sessions: what the next turn of a conversation reads, kept apart from the funnel.

A session is small and short-lived, so it lives in Redis with an expiry, or in a bounded
TTL cache when the app runs embedded without Redis.
"""

from __future__ import annotations

import json
import logging
import threading

import redis
from cachetools import TTLCache

log = logging.getLogger("marquee.chat")
SESSION_TTL_S = 24 * 3600
MAX_LOCAL_SESSIONS = 10_000  # embedded mode: the least recently used session is dropped


class SessionStore:
    """Chat sessions in Redis (expiring), or in a bounded TTL cache in the embedded mode.

    A session holds only what the next turn reads: the last retrieval query, so "more like
    that but older" refines it. Both stores forget a session after SESSION_TTL_S; the
    embedded one also keeps at most `max_local` sessions, so a long-running process does
    not grow with every visitor.
    """

    def __init__(
        self, client: redis.Redis | None, prefix: str, max_local: int = MAX_LOCAL_SESSIONS
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}:chat"
        self._local: TTLCache[str, str] = TTLCache(max_local, SESSION_TTL_S)
        self._lock = threading.Lock()

    def load(self, session_id: str) -> dict:
        """The session, or a fresh one (also when Redis is unreachable: chat still answers)."""
        if self.client is not None:
            try:
                raw = self.client.get(f"{self.prefix}:{session_id}")
            except redis.RedisError as exc:
                log.warning("chat session unavailable: %s", exc)
                raw = None
        else:
            with self._lock:
                raw = self._local.get(session_id)
        return json.loads(raw) if raw else {}

    def save(self, session_id: str, session: dict) -> None:
        raw = json.dumps(session)
        if self.client is not None:
            try:
                self.client.set(f"{self.prefix}:{session_id}", raw, ex=SESSION_TTL_S)
            except redis.RedisError as exc:  # the answer still goes out; follow-ups lose context
                log.warning("chat session not saved: %s", exc)
        else:
            with self._lock:
                self._local[session_id] = raw
