"""The contracts every candidate source and the merge step share.

Item and user ids at this boundary are the catalog's raw ids (the ones the API
speaks); each source maps them to its own internal indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np


class Candidate(NamedTuple):
    """A tuple, not a dataclass: sources create hundreds per request and tuples are ~3x
    cheaper to build."""

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
        return self._seen

    @cached_property
    def _seen(self) -> frozenset[int]:
        """Built once per request: every source asks, and histories run to thousands."""
        return self.exclude | frozenset(np.asarray(self.history, dtype=np.int64).tolist())


@runtime_checkable
class CandidateSource(Protocol):
    name: str

    def candidates(self, ctx: RequestContext, k: int) -> list[Candidate]:
        """Up to `k` items, best first, never an item in `ctx.seen()`."""
        ...
