"""The chat's short answer above the cards: LLM-streamed, with a deterministic twin.

`describe` says what was understood in plain words; it is both the LLM's input
(`summary` of the `chat_reply` prompt) and, with the top titles, the reply when the
LLM is off, slow or says something it must not (a title that was not found).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from llm.client import Budget, LLMClient
from llm.explain import TitleGuard
from llm.intent import RetrievalQuery
from llm.prompts import Prompt

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


def reply_is_grounded(text: str, titles: Sequence[str], guard: TitleGuard) -> bool:
    """No title the search did not return; one short paragraph."""
    if not text.strip() or len(text.split()) > 80:
        return False
    return not guard.mentioned(text) - {t.lower() for t in titles}


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
