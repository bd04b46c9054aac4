"""The message being consumed: the text with consumed phrases blanked, and what was found.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_CUT = "\x00"


class _Scan:
    """The message, with every consumed phrase blanked (same length, so offsets hold)."""

    def __init__(self, message: str) -> None:
        self.original = message
        self.work = message
        self.consumed = [False] * len(message)

    def free(self, start: int, end: int) -> bool:
        return not any(self.consumed[start:end])

    def consume(self, start: int, end: int) -> None:
        self.work = self.work[:start] + " " * (end - start) + self.work[end:]
        self.consumed[start:end] = [True] * (end - start)

    def matches(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Matches over the current text that no earlier rule has consumed meanwhile."""
        for match in list(pattern.finditer(self.work)):
            if self.free(match.start(), match.end()):
                yield match

    def remaining(self) -> str:
        """The unconsumed text, each cut marked by _CUT so cleaning can see where cuts were."""
        return "".join(
            _CUT if gone else ch for ch, gone in zip(self.original, self.consumed, strict=True)
        )

    def words_before(self, pos: int, n: int = 2) -> list[str]:
        return self.work[:pos].lower().split()[-n:]


@dataclass
class _Found:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    moods: list[str] = field(default_factory=list)
    refused_moods: list[str] = field(default_factory=list)
    years: list[tuple[int | None, int | None]] = field(default_factory=list)
    runtime: int | None = None
    runtime_said: bool = False
    language: str | None = None
    count: int | None = None
    similar: list[int] = field(default_factory=list)
    additive: bool = False
    mentions: list = field(default_factory=list)  # mentions.Mention, "Name (YYYY)" titles
    context_moods: list[str] = field(default_factory=list)  # "rainy Sunday" -> "cozy"
    seen_shown: bool = False  # "I already saw those"
