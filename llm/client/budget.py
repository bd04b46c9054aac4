"""What a request may spend on LLM calls (`Budget`), the client's errors and its records."""

from __future__ import annotations

import time
from dataclasses import dataclass


class LLMError(RuntimeError):
    """The LLM could not give a usable answer; the caller falls back to its rules."""


class BudgetSpent(LLMError):
    """Not started: the request's latency or token budget is used up."""


@dataclass
class Budget:
    """What one request may still spend on LLM calls. Shared by all its calls."""

    deadline: float  # time.monotonic() value
    tokens: int = 100_000
    parent: Budget | None = None

    @classmethod
    def of(cls, ms: float, tokens: int = 100_000) -> Budget:
        return cls(time.monotonic() + ms / 1e3, tokens)

    def sub(self, ms: float) -> Budget:
        """At most `ms` of what is left, for one step; tokens spent count on both."""
        return Budget(min(self.deadline, time.monotonic() + ms / 1e3), self.tokens, self)

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, min_s: float = 0.05) -> None:
        if self.left_s() < min_s:
            raise BudgetSpent(f"latency budget spent ({self.left_s() * 1e3:.0f} ms left)")
        if self.tokens <= 0:
            raise BudgetSpent("token budget spent")

    def spend(self, tokens: int) -> None:
        self.tokens -= tokens
        if self.parent is not None:
            self.parent.spend(tokens)


@dataclass(frozen=True)
class CallRecord:
    model: str
    prompt: str | None  # "name@vN"
    kind: str  # complete | stream | structured | score
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class LLMResult:
    text: str
    model: str
    prompt: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached: bool


@dataclass(frozen=True)
class StructuredResult:
    value: dict
    result: LLMResult
    repaired: bool  # the first answer was invalid and the repair round-trip fixed it
