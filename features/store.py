"""Online feature store: one interface, a Redis implementation and an in-process one.

Features are grouped (e.g. "user_long", "user_short", "item_static", "item_dynamic").
A group's value for one entity is a flat mapping of names to float vectors, kept
as compact float32 bytes in Redis hashes (one hash per entity and group, so a
feed request reads a user and its ~500 candidates in one pipelined round trip).
Keys carry a schema version, so a new feature layout never reads an old one.
Every write records the group's update time; `freshness()` turns that into the
seconds-since-update metric the service exports.

The in-process store is the embedded default when no Redis URL is configured, and
the stale-snapshot fallback when Redis is unreachable; the same test suite runs
against both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

Vector = np.ndarray  # float32, 1-D
Features = dict[str, Vector]
SCHEMA_VERSION = 1


@runtime_checkable
class FeatureStore(Protocol):
    def put_user(self, user_id: int, group: str, features: Mapping[str, Vector]) -> None: ...

    def put_items(self, group: str, rows: Mapping[int, Mapping[str, Vector]]) -> None: ...

    def get_user(self, user_id: int, groups: Iterable[str]) -> dict[str, Features]:
        """group -> features for each group the user has (missing groups are left out)."""
        ...

    def get_items(self, item_ids: Iterable[int], group: str) -> dict[int, Features]:
        """item -> features for the items that have the group (missing items left out)."""
        ...

    def freshness(self, now: float | None = None) -> dict[str, float]:
        """group -> seconds since its last write."""
        ...


def _as_vector(value: Vector | Iterable[float] | float) -> Vector:
    return np.atleast_1d(np.asarray(value, dtype=np.float32))


def _check(features: Mapping[str, Vector]) -> dict[str, Vector]:
    if not features:
        raise ValueError("a feature group write needs at least one feature")
    out = {}
    for name, value in features.items():
        vec = _as_vector(value)
        if vec.ndim != 1 or not np.isfinite(vec).all():
            raise ValueError(f"feature {name!r} must be a finite 1-D vector")
        out[str(name)] = vec
    return out


class InProcessFeatureStore:
    """Dict-backed store; thread-safe. Also serves as a snapshot of a Redis store."""

    def __init__(self) -> None:
        self._users: dict[tuple[int, str], Features] = {}
        self._items: dict[tuple[int, str], Features] = {}
        self._updated: dict[str, float] = {}
        self._lock = threading.Lock()

    def put_user(self, user_id: int, group: str, features: Mapping[str, Vector]) -> None:
        clean = _check(features)
        with self._lock:
            self._users.setdefault((int(user_id), group), {}).update(clean)
            self._updated[group] = time.time()

    def put_items(self, group: str, rows: Mapping[int, Mapping[str, Vector]]) -> None:
        clean = {int(item): _check(feats) for item, feats in rows.items()}
        with self._lock:
            for item, feats in clean.items():
                self._items.setdefault((item, group), {}).update(feats)
            self._updated[group] = time.time()

    def get_user(self, user_id: int, groups: Iterable[str]) -> dict[str, Features]:
        with self._lock:
            return {
                g: dict(self._users[(int(user_id), g)])
                for g in groups
                if (int(user_id), g) in self._users
            }

    def get_items(self, item_ids: Iterable[int], group: str) -> dict[int, Features]:
        with self._lock:
            return {
                int(i): dict(self._items[(int(i), group)])
                for i in item_ids
                if (int(i), group) in self._items
            }

    def freshness(self, now: float | None = None) -> dict[str, float]:
        now = time.time() if now is None else now
        with self._lock:
            return {g: max(0.0, now - t) for g, t in self._updated.items()}


class RedisFeatureStore:
    """Redis hashes of float32 bytes under `<prefix>:v<schema>:...`, optional TTL per write."""

    def __init__(self, client, prefix: str = "marquee", ttl_s: int | None = None) -> None:
        self.client = client
        self.root = f"{prefix}:v{SCHEMA_VERSION}"
        self.ttl_s = ttl_s

    def _user_key(self, user_id: int, group: str) -> str:
        return f"{self.root}:user:{int(user_id)}:{group}"

    def _item_key(self, item_id: int, group: str) -> str:
        return f"{self.root}:item:{int(item_id)}:{group}"

    def _write(self, pipe, key: str, features: Features) -> None:
        pipe.hset(key, mapping={name: vec.tobytes() for name, vec in features.items()})
        if self.ttl_s:
            pipe.expire(key, self.ttl_s)

    def _touch(self, pipe, group: str) -> None:
        pipe.hset(f"{self.root}:updated", group, repr(time.time()))

    def put_user(self, user_id: int, group: str, features: Mapping[str, Vector]) -> None:
        clean = _check(features)
        pipe = self.client.pipeline(transaction=True)
        self._write(pipe, self._user_key(user_id, group), clean)
        self._touch(pipe, group)
        pipe.execute()

    def put_items(self, group: str, rows: Mapping[int, Mapping[str, Vector]]) -> None:
        clean = {int(item): _check(feats) for item, feats in rows.items()}
        pipe = self.client.pipeline(transaction=False)
        for item, feats in clean.items():
            self._write(pipe, self._item_key(item, group), feats)
        self._touch(pipe, group)
        pipe.execute()

    @staticmethod
    def _decode(raw: Mapping[bytes, bytes]) -> Features:
        return {k.decode(): np.frombuffer(v, dtype=np.float32).copy() for k, v in raw.items()}

    def get_user(self, user_id: int, groups: Iterable[str]) -> dict[str, Features]:
        groups = list(groups)
        pipe = self.client.pipeline(transaction=False)
        for g in groups:
            pipe.hgetall(self._user_key(user_id, g))
        return {g: self._decode(raw) for g, raw in zip(groups, pipe.execute(), strict=True) if raw}

    def get_items(self, item_ids: Iterable[int], group: str) -> dict[int, Features]:
        ids = [int(i) for i in item_ids]
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(self._item_key(i, group))
        return {i: self._decode(raw) for i, raw in zip(ids, pipe.execute(), strict=True) if raw}

    def freshness(self, now: float | None = None) -> dict[str, float]:
        now = time.time() if now is None else now
        stamps = self.client.hgetall(f"{self.root}:updated")
        return {k.decode(): max(0.0, now - float(v)) for k, v in stamps.items()}
