"""Who owns each chat session: ids are issued by the server and bound to their caller.

Why beside the chat and not inside it: the binding is an API concern (who may continue
which conversation); the chat's own session store keeps only the conversation. Same
expiry as the conversation store, in Redis when the service has one, and always in a
bounded local cache too, so a Redis blip degrades to "this process remembers" instead
of failing the chat.
"""

from __future__ import annotations

import logging

import redis
from cachetools import TTLCache

OWNER_TTL_S = 24 * 3600
log = logging.getLogger("marquee.security")


class SessionOwners:
    def __init__(self, client: redis.Redis | None, prefix: str, max_local: int = 50_000) -> None:
        self.client = client
        self.prefix = f"{prefix}:chat-owner"
        self._local: TTLCache[str, str] = TTLCache(max_local, OWNER_TTL_S)

    def owner(self, session_id: str) -> str | None:
        if self.client is not None:
            try:
                raw = self.client.get(f"{self.prefix}:{session_id}")
            except redis.RedisError as exc:
                log.warning("session owner lookup fell back to this process: %s", exc)
            else:
                if raw is not None:
                    return raw.decode() if isinstance(raw, bytes) else raw
        return self._local.get(session_id)

    def bind(self, session_id: str, owner: str) -> None:
        self._local[session_id] = owner
        if self.client is not None:
            try:
                self.client.set(f"{self.prefix}:{session_id}", owner, ex=OWNER_TTL_S)
            except redis.RedisError as exc:
                log.warning("session owner kept in this process only: %s", exc)
