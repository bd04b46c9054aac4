"""The contracts every candidate source and the merge step share.

Item and user ids at this boundary are the catalog's raw ids (the ones the API
speaks); each source maps them to its own internal indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Candidate:
    item_id: int
    score: float
    source: str


@dataclass(frozen=True)
class RequestContext:
    """What a source may know about one request."""

    user_id: int | None
    history: np.ndarray  # raw item ids, oldest first
    timestamp: int  # request time, unix seconds
    demographics: dict[str, str | int] | None = None
    exclude: frozenset[int] = field(default_factory=frozenset)
    history_times: np.ndarray | None = None  # unix seconds per history item, when known

    def seen(self) -> frozenset[int]:
        return self.exclude | frozenset(int(i) for i in self.history)


@runtime_checkable
class CandidateSource(Protocol):
    name: str

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        """Up to `k` items, best first, never an item in `ctx.seen()`."""
        ...
