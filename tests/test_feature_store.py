"""One suite, two stores: the in-process default and Redis on 127.0.0.1:6379 (for real)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from features.store import FeatureStore, InProcessFeatureStore, RedisFeatureStore

from .requirements import missing


@pytest.fixture(params=["in-process", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[FeatureStore]:
    if request.param == "in-process":
        yield InProcessFeatureStore()
        return
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        missing("Redis is not running on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex[:12]}"  # unique per run; removed afterwards
    yield RedisFeatureStore(client, prefix=prefix, ttl_s=600)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def test_user_groups_round_trip_as_float32(store: FeatureStore) -> None:
    store.put_user(7, "user_long", {"genre_affinity": np.arange(4) / 4, "activity": 3.0})
    store.put_user(7, "user_short", {"last_items": np.array([10, 20, 30])})
    got = store.get_user(7, ["user_long", "user_short", "missing"])
    assert set(got) == {"user_long", "user_short"}
    np.testing.assert_array_equal(got["user_long"]["genre_affinity"], [0, 0.25, 0.5, 0.75])
    assert got["user_long"]["activity"].dtype == np.float32
    assert got["user_short"]["last_items"].tolist() == [10, 20, 30]
    assert store.get_user(8, ["user_long"]) == {}


def test_writes_merge_features_within_a_group(store: FeatureStore) -> None:
    store.put_user(1, "user_short", {"a": [1.0]})
    store.put_user(1, "user_short", {"b": [2.0]})
    store.put_user(1, "user_short", {"a": [3.0]})
    got = store.get_user(1, ["user_short"])["user_short"]
    assert {k: v.tolist() for k, v in got.items()} == {"a": [3.0], "b": [2.0]}


def test_items_are_read_in_one_batch_and_missing_ones_left_out(store: FeatureStore) -> None:
    rows = {i: {"ctr": [i / 100], "trend": [float(i)]} for i in range(500)}
    store.put_items("item_dynamic", rows)
    got = store.get_items([3, 499, 10_000], "item_dynamic")
    assert set(got) == {3, 499}
    assert got[499]["trend"].tolist() == [499.0]
    assert store.get_items([3], "item_static") == {}


def test_freshness_reports_seconds_since_each_group_was_written(store: FeatureStore) -> None:
    before = time.time()
    store.put_items("item_static", {1: {"year": [1999.0]}})
    fresh = store.freshness(now=before + 100)
    assert set(fresh) == {"item_static"}
    assert 99.0 <= fresh["item_static"] <= 100.0


def test_bad_values_are_rejected_and_nothing_is_written(store: FeatureStore) -> None:
    with pytest.raises(ValueError, match="finite"):
        store.put_user(2, "user_long", {"x": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="at least one"):
        store.put_items("item_static", {5: {}})
    assert store.get_user(2, ["user_long"]) == {}
    assert store.get_items([5], "item_static") == {}


def test_redis_keys_are_versioned_and_expire() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        missing("Redis is not running on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    store = RedisFeatureStore(client, prefix=prefix, ttl_s=30)
    try:
        store.put_user(3, "user_long", {"a": [1.0]})
        key = f"{prefix}:v1:user:3:user_long"
        assert client.exists(key) and 0 < client.ttl(key) <= 30
        assert client.hget(key, "a") == np.float32(1.0).tobytes()
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
