"""Identical LLM calls answered from Redis (shared by replicas) or an in-process LRU."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict

import redis

log = logging.getLogger("marquee.llm")


class ResponseCache:
    """Answers by request hash: Redis (shared by replicas, expiring) or a bounded dict."""

    def __init__(self, client: redis.Redis | None, prefix: str, ttl_s: int, size: int = 2048):
        self.client = client
        self.prefix = f"{prefix}:llm-cache"
        self.ttl_s = ttl_s
        self.size = size
        self._local: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(payload: dict) -> str:
        raw = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    def get(self, key: str) -> dict | None:
        if self.client is not None:
            try:
                raw = self.client.get(f"{self.prefix}:{key}")
            except redis.RedisError as exc:  # a cache must never fail a request
                log.warning("llm cache read failed: %s", exc)
                return None
        else:
            with self._lock:
                raw = self._local.get(key)
                if raw is not None:
                    self._local.move_to_end(key)
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict) -> None:
        raw = json.dumps(value)
        if self.client is not None:
            try:
                self.client.set(f"{self.prefix}:{key}", raw, ex=self.ttl_s)
            except redis.RedisError as exc:
                log.warning("llm cache write failed: %s", exc)
            return
        with self._lock:
            self._local[key] = raw
            while len(self._local) > self.size:
                self._local.popitem(last=False)
