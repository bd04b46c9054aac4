"""The chat's short answer above the cards: LLM-streamed, with a deterministic twin.

`describe` says what was understood in plain words; it is both the LLM's input
(`summary` of the `chat_reply` prompt) and, with the top titles, the reply when the
LLM is off, slow or says something it must not: `checked_reply` streams only what passes
the checks of llm/reply_check.py (repetition, a constraint the query does not hold, a
title not on the page) and says when the template must replace it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

from llm.client import Budget, LLMClient, LLMError
from llm.explain import TitleGuard
from llm.intent import RetrievalQuery
from llm.prompts import Prompt
from llm.reply_check import ReplyChecker, ReplyContext, StreamGate

_PLURAL = {
    "Comedy": "comedies",
    "Sci-Fi": "science fiction",
    "Film-Noir": "film noir",
    "Children": "family films",
    "Animation": "animated films",
    "Documentary": "documentaries",
    "Musical": "musicals",
    "Mystery": "mysteries",
    "Romance": "romances",
    "Western": "westerns",
    "Thriller": "thrillers",
    "Drama": "dramas",
    "Fantasy": "fantasy",
    "Horror": "horror",
    "War": "war films",
    "Crime": "crime films",
    "Action": "action films",
    "Adventure": "adventures",
    "IMAX": "IMAX films",
}


def _years(query: RetrievalQuery) -> str | None:
    low, high = query.year_min, query.year_max
    if low is not None and high is not None:
        if low == high:
            return f"from {low}"
        if low % 10 == 0 and high == low + 9:
            return f"from the {low}s"
        return f"from {low} to {high}"
    if low is not None:
        return f"from {low} on"
    if high is not None:
        return f"up to {high}"
    return None


def describe(query: RetrievalQuery, title_of: Callable[[int], str]) -> str:
    """ "comedies from the 1990s, no horror, under 120 minutes" — what the chat understood."""
    genres = [_PLURAL.get(g, g.lower()) for g in query.include_genres]
    head = " and ".join(genres) if genres else "films"
    moods = [m for m in query.mood_terms if m.lower() not in head]
    if moods:
        head = f"{', '.join(moods[:3])} {head}"
    if not query.include_genres and query.prefer_genres:
        head += " leaning to " + " or ".join(_PLURAL.get(g, g.lower()) for g in query.prefer_genres)
    parts = [head]
    if query.similar_to:
        parts.append("like " + ", ".join(title_of(i) for i in query.similar_to[:3]))
    if years := _years(query):
        parts.append(years)
    if query.exclude_genres:
        parts.append("no " + ", ".join(g.lower() for g in query.exclude_genres))
    if query.max_runtime:
        parts.append(f"under {query.max_runtime} minutes")
    if query.language:
        parts.append(f"in language '{query.language}'")
    return ", ".join(parts)


def fallback_reply(summary: str, titles: Sequence[str]) -> str:
    if not titles:
        return f"I looked for {summary} but found nothing that fits; try loosening a constraint."
    picks = ", ".join(titles[:2]) + (f" and {titles[2]}" if len(titles) > 2 else "")
    return f"Here are {summary}: {picks} lead the list."


def stream_reply(
    client: LLMClient,
    prompt: Prompt,
    message: str,
    summary: str,
    titles: Sequence[str],
    budget: Budget | None,
) -> Iterator[str]:
    """Pieces of the LLM's reply; raises LLMError before the first piece if it cannot start."""
    params = prompt.spec.params
    yield from client.stream(
        prompt.render(message=message, summary=summary, titles=list(titles[:3])),
        prompt=prompt.ref,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        stop=params.stop,
        top_p=params.top_p,
        budget=budget,
    )


class ReplyCost:
    """How long a whole reply takes, per model (moving average of the recent ones): a
    reply that would not finish inside what is left of the budget is not started (the
    template answers at once) rather than cut off at the deadline."""

    def __init__(self, default_ms: float = 900.0, weight: float = 0.3) -> None:
        self.default_ms = default_ms
        self.weight = weight
        self._ms: dict[str, float] = {}
        self._lock = threading.Lock()

    def expected_ms(self, model: str) -> float:
        return self._ms.get(model, self.default_ms)

    def relax(self, model: str, factor: float = 0.9) -> None:
        """After a skip: expect a little less, so a reply is tried again soon."""
        with self._lock:
            if model in self._ms:
                self._ms[model] *= factor

    def observe(self, model: str, ms: float) -> None:
        with self._lock:
            old = self._ms.get(model)
            self._ms[model] = ms if old is None else (1 - self.weight) * old + self.weight * ms


REPLY_COST = ReplyCost()


@dataclass(frozen=True)
class ReplyOutcome:
    """How a streamed reply ended: kept (shown whole) or to be replaced by the template."""

    kept: bool
    check: str | None  # the failed check (llm/reply_check.py); "error": no usable reply;
    # "budget": not started, it would not have finished in time
    detail: str | None
    text: str  # everything the model generated (for the log)


def checked_reply(
    client: LLMClient,
    prompt: Prompt,
    ctx: ReplyContext,
    guard: TitleGuard,
    budget: Budget | None,
) -> Generator[str, None, ReplyOutcome]:
    """The reply's pieces that are fit to show, as they pass `StreamGate`; returns the
    outcome. Generation stops at the first failed check, so a degenerate reply costs no
    more tokens than it took to see it is one, and nothing after that point is shown."""
    expected = REPLY_COST.expected_ms(client.model)
    if budget is not None and budget.left_s() * 1e3 < expected:
        left = budget.left_s() * 1e3
        REPLY_COST.relax(client.model)  # a slow spell must not keep the LLM out for good
        return ReplyOutcome(False, "budget", f"needs ~{expected:.0f} ms, {left:.0f} left", "")
    gate = StreamGate(ReplyChecker(guard), ctx)
    pieces = stream_reply(client, prompt, ctx.message, ctx.summary, ctx.titles, budget)
    error, start = None, time.perf_counter()
    try:
        for piece in pieces:
            if shown := gate.feed(piece):
                yield shown
            if not gate.verdict.ok:
                break
        if shown := gate.finish():
            yield shown
    except LLMError as exc:
        error = str(exc)[:200]
    finally:
        pieces.close()
    if gate.verdict.ok or gate.verdict.check == "incomplete":  # ran to its end
        REPLY_COST.observe(client.model, (time.perf_counter() - start) * 1e3)
    if error is not None:
        return ReplyOutcome(False, "error", error, gate.text)
    verdict = gate.verdict
    return ReplyOutcome(verdict.ok, verdict.check, verdict.detail, gate.text)
