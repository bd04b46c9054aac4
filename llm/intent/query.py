"""The retrieval query a chat message becomes, and the limits of its fields.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

YEAR_FLOOR, YEAR_CEILING = 1870, 2100
CLASSIC_YEAR_MAX = 1979
# Relative eras count back from the catalog's last release year, not from the calendar
# (MovieLens ends in 2018). RECENT_WINDOW: "recent" = the last year and the two before
# it, which gives a full page of comedies on ml-latest-small (2016-2018: 148) and ml-100k
# (1996-1998: 184); OLD_YEARS_AGO: "older" with nothing shown to compare to.
RECENT_WINDOW = 2
OLD_YEARS_AGO = 20
CLASSIC_SPAN = 20  # a catalog with nothing up to CLASSIC_YEAR_MAX: its first years
SHORT_RUNTIME = 100
NOT_TOO_LONG_RUNTIME = 120
SHORTER_STEP, SHORTER_FLOOR = 20, 30
MAX_COUNT = 50

_ISO_639_1 = re.compile(r"[a-z]{2}")


class RetrievalQuery(BaseModel):
    """What retrieval needs from a chat turn; validation is the contract with the LLM merge."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    include_genres: list[str] = Field(default_factory=list)
    exclude_genres: list[str] = Field(default_factory=list)
    # Genres the request suggests without naming them (an LLM proposal, llm/intent_llm.py):
    # they lift matching titles in the ranking but never filter.
    prefer_genres: list[str] = Field(default_factory=list)
    year_min: int | None = Field(default=None, ge=YEAR_FLOOR, le=YEAR_CEILING)
    year_max: int | None = Field(default=None, ge=YEAR_FLOOR, le=YEAR_CEILING)
    max_runtime: int | None = Field(default=None, ge=1, le=600)
    language: str | None = None
    mood_terms: list[str] = Field(default_factory=list)
    # Titles the person liked (also "like X"), has seen, or disliked, in this message;
    # chat keeps them for the whole conversation and never recommends them back.
    similar_to: list[int] = Field(default_factory=list)
    seen: list[int] = Field(default_factory=list)
    disliked: list[int] = Field(default_factory=list)
    seen_shown: bool = False  # "I already saw those": the page just shown was seen
    # False when the message has no content of its own to search (greetings, small talk,
    # only titles): chat then ranks by the titles' neighbours and the person's taste.
    searchable: bool = True
    count: int = Field(default=10, ge=1, le=MAX_COUNT)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("text must not be blank")
        return value

    @field_validator(
        "include_genres", "exclude_genres", "prefer_genres", "similar_to", "seen", "disliked"
    )
    @classmethod
    def _dedupe(cls, values: list[Any]) -> list[Any]:
        return list(dict.fromkeys(values))

    @field_validator("mood_terms")
    @classmethod
    def _lowercase_moods(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip().lower() for v in values if v.strip()))

    @field_validator("language")
    @classmethod
    def _iso_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _ISO_639_1.fullmatch(value):
            raise ValueError(f"language must be a two-letter ISO 639-1 code, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RetrievalQuery:
        low, high = self.year_min, self.year_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"year_min {self.year_min} > year_max {self.year_max}")
        excluded = set(self.exclude_genres)
        if excluded & set(self.include_genres):  # exclusion wins: never show what was refused
            self.include_genres = [g for g in self.include_genres if g not in excluded]
        if excluded & set(self.prefer_genres):
            self.prefer_genres = [g for g in self.prefer_genres if g not in excluded]
        return self
