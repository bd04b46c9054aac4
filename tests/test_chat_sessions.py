"""Chat sessions keep only what the next turn reads, and the embedded store is bounded."""

from __future__ import annotations

from app.chat import SessionStore

from .redis_util import delete_prefix, redis_or_missing, unique_prefix


def test_embedded_sessions_are_bounded_and_keep_the_query_only() -> None:
    store = SessionStore(None, "test", max_local=3)
    for i in range(5):
        store.save(f"s{i}", {"query": {"text": f"q{i}"}})
    assert store.load("s0") == {} and store.load("s1") == {}
    assert store.load("s4") == {"query": {"text": "q4"}}


def test_redis_sessions_expire() -> None:
    client = redis_or_missing()
    prefix = unique_prefix()
    try:
        store = SessionStore(client, prefix)
        store.save("abc", {"query": {"text": "noir"}})
        assert store.load("abc") == {"query": {"text": "noir"}}
        assert 0 < client.ttl(f"{prefix}:chat:abc") <= 24 * 3600
    finally:
        delete_prefix(client, prefix)
