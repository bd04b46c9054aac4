"""Contracts shared by the ranker, the re-ranking rules and cold start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from retrieval.base import RequestContext

OBJECTIVES = ("click", "complete", "like", "regret")


@dataclass
class RankedItem:
    """One candidate on its way to the page: ranker output plus what rules did to it."""

    item_id: int
    score: float  # the blended ranker score; rules may reorder but keep it for explanation
    objectives: dict[str, float] = field(default_factory=dict)  # P(click), P(complete), ...
    sources: tuple[str, ...] = ()  # candidate sources that retrieved it
    reasons: list[str] = field(default_factory=list)  # e.g. "fresh", "exploration"


@dataclass(frozen=True)
class FeedContext:
    """A feed request: the retrieval context plus page-level settings the rules need."""

    request: RequestContext
    page_size: int = 20
    maturity: str = "adult"  # "kids" applies the kids content policy
    include_genres: frozenset[str] = frozenset()
    exclude_genres: frozenset[str] = frozenset()


@runtime_checkable
class Rule(Protocol):
    name: str

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        """Return a new list (filtered and/or reordered); never mutate the input list."""
        ...
