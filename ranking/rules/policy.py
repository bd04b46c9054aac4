"""Maturity profiles: what a "kids" feed must never show.

Defaults (see `DEFAULT_PROFILES`):

- "adult": blocks nothing.
- "kids": blocks the Horror genre, any item whose keywords or tags contain a term from
  `KIDS_BLOCKED_TERMS` (gore, violence, drugs, sex, nudity, rape, torture, suicide,
  serial killer, ...), and items the catalog does not know (no metadata = no proof
  they are safe).

Matching is case-insensitive and whole-word: a blocked term matches a keyword or tag
that equals it or contains it as a run of whole words, after punctuation is folded to
spaces ("drug" blocks "drug dealer" and the MovieLens tag "r:drug use", but not
"drugstore"; "sex" does not block "sexism"). Terms never match across two different
keywords. Plural forms are separate terms, hence "drug" and "drugs" both in the list.

Why fail closed: a request whose maturity names no profile gets the `fallback` profile
("kids" by default), since a typo must not unlock adult content. Verdicts are
precomputed per catalog row at construction, so a request costs one array lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ranking.base import FeedContext, RankedItem
from ranking.rules.meta import ItemMeta, normalize_term

KIDS_BLOCKED_GENRES = frozenset({"Horror"})
KIDS_BLOCKED_TERMS: tuple[str, ...] = (
    "gore",
    "gory",
    "violence",
    "violent",
    "graphic violence",
    "blood splatter",
    "drug",
    "drugs",
    "drug abuse",
    "drug addiction",
    "heroin",
    "cocaine",
    "sex",
    "sexual",
    "sexuality",
    "nudity",
    "nude",
    "rape",
    "prostitution",
    "torture",
    "serial killer",
    "suicide",
)


@dataclass(frozen=True)
class MaturityProfile:
    blocked_genres: frozenset[str] = frozenset()
    blocked_terms: tuple[str, ...] = ()  # matched against keywords and tags
    drop_unknown: bool = False  # drop items with no catalog metadata


def _default_profiles() -> dict[str, MaturityProfile]:
    return {
        "adult": MaturityProfile(),
        "kids": MaturityProfile(KIDS_BLOCKED_GENRES, KIDS_BLOCKED_TERMS, drop_unknown=True),
    }


DEFAULT_PROFILES: Mapping[str, MaturityProfile] = MappingProxyType(_default_profiles())


@dataclass(frozen=True)
class ContentPolicyConfig:
    profiles: Mapping[str, MaturityProfile] = field(default_factory=_default_profiles)
    fallback: str = "kids"  # profile for a maturity value that names none

    def __post_init__(self) -> None:
        if self.fallback not in self.profiles:
            raise ValueError(f"fallback profile {self.fallback!r} is not defined")


def term_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation for all terms, each bounded by word edges."""
    normalized = sorted({normalize_term(t) for t in terms} - {""}, key=len, reverse=True)
    if not normalized:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(t) for t in normalized) + r")\b")


def blocked_rows(meta: ItemMeta, profile: MaturityProfile) -> np.ndarray:
    """(n + 1,) bool: rows the profile blocks, the last being the unknown-item row."""
    blocked = meta.genres[:, meta.genre_columns(profile.blocked_genres)].any(axis=1)
    pattern = term_pattern(profile.blocked_terms)
    if pattern is not None:
        hits = [any(pattern.search(t) for t in terms) for terms in meta.terms]
        blocked |= np.array(hits, dtype=bool)
    blocked[meta.unknown_row] = profile.drop_unknown
    return blocked


class ContentPolicy:
    name = "content_policy"

    def __init__(self, meta: ItemMeta, config: ContentPolicyConfig | None = None) -> None:
        self.meta = meta
        self.config = config or ContentPolicyConfig()
        self._blocked = {
            name: blocked_rows(meta, profile) for name, profile in self.config.profiles.items()
        }

    def profile_for(self, maturity: str) -> str:
        return maturity if maturity in self._blocked else self.config.fallback

    def apply(self, ctx: FeedContext, ranked: list[RankedItem]) -> list[RankedItem]:
        blocked = self._blocked[self.profile_for(ctx.maturity)]
        if not ranked or not blocked.any():
            return list(ranked)
        drop = blocked[self.meta.rows([r.item_id for r in ranked])]
        return [r for r, d in zip(ranked, drop.tolist(), strict=True) if not d]
