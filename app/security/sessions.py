"""Who owns each chat session: ids are issued by the server and bound to their caller.

Why beside the chat and not inside it: the binding is an API concern (who may continue
which conversation); the chat's own session store keeps only the conversation. Same
expiry as the conversation store, in Redis when the service has one.
"""

from __future__ import annotations

import redis
from cachetools import TTLCache

OWNER_TTL_S = 24 * 3600


class SessionOwners:
    def __init__(self, client: redis.Redis | None, prefix: str, max_local: int = 50_000) -> None:
        self.client = client
        self.prefix = f"{prefix}:chat-owner"
        self._local: TTLCache[str, str] = TTLCache(max_local, OWNER_TTL_S)

    def owner(self, session_id: str) -> str | None:
        if self.client is None:
            return self._local.get(session_id)
        raw = self.client.get(f"{self.prefix}:{session_id}")
        return raw.decode() if isinstance(raw, bytes) else raw

    def bind(self, session_id: str, owner: str) -> None:
        if self.client is None:
            self._local[session_id] = owner
        else:
            self.client.set(f"{self.prefix}:{session_id}", owner, ex=OWNER_TTL_S)
