"""A real Redis on 127.0.0.1:6379 with a unique key prefix per use, cleaned up afterwards;
and a poll helper for what the nearline side changes asynchronously."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from .requirements import missing

URL = "redis://127.0.0.1:6379/0"


def redis_or_missing() -> redis.Redis:
    """The test Redis; skipped locally when it is not running, a failure in CI."""
    client = redis.Redis.from_url(URL)
    try:
        client.ping()
    except redis.ConnectionError:
        missing("Redis is not running on 127.0.0.1:6379")
    return client


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for lo in range(0, len(keys), 1000):
        client.delete(*keys[lo : lo + 1000])


@contextmanager
def redis_prefix() -> Iterator[tuple[redis.Redis, str]]:
    client = redis_or_missing()
    prefix = unique_prefix()
    try:
        yield client, prefix
    finally:
        delete_prefix(client, prefix)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
