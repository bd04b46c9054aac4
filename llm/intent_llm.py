"""The LLM half of intent parsing: a proposal, accepted only where the message agrees.

The deterministic parser (llm/intent) gives the validated base. The LLM adds what
rules cannot read, mostly the genres a mood implies ("a love story that makes me cry"
is Romance/Drama without naming either). Two ways to ask, one per kind of model:

- embedded models score each genre as the answer to a fixed question (log-probability
  of the first token of the genre's words after the prompt `intent_local`: one forward
  pass), minus the same score for content-free requests (contextual calibration: it
  removes the model's prior for words such as "drama"; computed once, at warm-up).
  Generating JSON fails on meaning with 135M-270M models even when a grammar makes it
  valid (../shared/DESIGN.md and `marquee prompts eval intent`); scoring works.
- real models return a JSON proposal through the `intent` prompt (structured output).

Consistency rules (the LLM is never trusted over the message):
- proposed genres become `prefer_genres`, a soft boost, never a filter; a genre the
  message refused is dropped;
- a proposed exclusion is taken only if the message negates something, and never
  against a genre the message asked for;
- proposed years only fill bounds the parser left open, and only when the message has
  a year or era word;
- mood terms only if their words occur in the message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llm.client import Budget, LLMClient, LLMError
from llm.intent import RetrievalQuery
from llm.prompts import Prompt, PromptError, PromptRegistry

log = logging.getLogger("marquee.llm")

# The words a model reads for each MovieLens genre ("Sci-Fi" is not how people talk).
GENRE_WORDS = {
    "Action": "action",
    "Adventure": "adventure",
    "Animation": "animation",
    "Children": "family",
    "Comedy": "comedy",
    "Crime": "crime",
    "Documentary": "documentary",
    "Drama": "drama",
    "Fantasy": "fantasy",
    "Film-Noir": "film noir",
    "Horror": "horror",
    "IMAX": "imax",
    "Musical": "musical",
    "Mystery": "mystery",
    "Romance": "romance",
    "Sci-Fi": "science fiction",
    "Thriller": "thriller",
    "War": "war",
    "Western": "western",
}
# Content-free requests whose mean score is the model's prior per genre.
NEUTRAL = ("a movie", "N/A", "something to watch")
MAX_PREFER = 2
MARGIN = 1.0  # calibrated log-odds a genre must beat the median genre by
SECOND_WITHIN = 1.0  # a second genre only if it is about as likely as the first
SCORED_GENRES_SKIP = {"IMAX"}  # a format, not something a mood implies

_NEGATION = re.compile(
    r"\b(no|not|without|nothing|avoid|hate|don't|dont|except|skip|never|none|less)\b", re.I
)
_DATED_TITLE = re.compile(r"\(\s*\d{4}\s*\)")
_ERA = re.compile(
    r"\b(\d{2,4}s?|decade|century|old|older|classic|vintage|recent|new|newer|modern|latest)\b",
    re.I,
)


@dataclass(frozen=True)
class Proposal:
    prefer_genres: list[str]
    exclude_genres: list[str] = field(default_factory=list)
    mood_terms: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    prompt: str | None = None  # the prompt ref that produced it
    scores: dict[str, float] | None = None  # calibrated genre scores (embedded models)


class IntentModel:
    """Asks the configured LLM for a proposal; None whenever it cannot (never raises)."""

    def __init__(self, client: LLMClient, prompts: PromptRegistry | None) -> None:
        self.client = client
        self.prompts = prompts
        self._priors: dict[tuple[str, str, tuple[str, ...]], np.ndarray] = {}
        self._lock = threading.Lock()

    def _live(self, name: str) -> Prompt:
        if self.prompts is None:
            raise PromptError(f"no prompt registry to load {name!r} from")
        return self.prompts.get(name)

    def warm_up(self, genres: Sequence[str]) -> None:
        """Compute the calibration prior now, not on a user's request."""
        if self.client.enabled and self.client.is_local:
            self.propose("a movie", genres, None)

    def propose(
        self,
        message: str,
        genres: Sequence[str],
        previous: RetrievalQuery | None,
        budget: Budget | None = None,
        prompt: Prompt | None = None,
    ) -> Proposal | None:
        """`prompt` overrides the live version (the prompt lab's drafts, eval runs)."""
        if not self.client.enabled:
            return None
        try:
            if self.client.is_local:
                return self._scored(message, genres, budget, prompt)
            return self._structured(message, genres, previous, budget, prompt)
        except (LLMError, PromptError) as exc:
            log.info("intent proposal skipped: %s", exc)
            return None

    def _scored(
        self, message: str, genres: Sequence[str], budget: Budget | None, prompt: Prompt | None
    ) -> Proposal:
        prompt = prompt or self._live("intent_local")
        labels = [g for g in genres if g in GENRE_WORDS and g not in SCORED_GENRES_SKIP]
        options = [" " + GENRE_WORDS[g] for g in labels]

        def score(text: str) -> np.ndarray:
            from llm.local import prefilled

            rendered = prefilled(self.client.local, prompt.render(message=text))
            return np.array(self.client.score(rendered, options, prompt=prompt.ref, budget=budget))

        key = (self.client.model, prompt.ref, tuple(labels))
        with self._lock:
            prior = self._priors.get(key)
        if prior is None:  # once per model and prompt version
            prior = np.mean([score(text) for text in NEUTRAL], axis=0)
            with self._lock:
                self._priors[key] = prior
        calibrated = score(message) - prior
        order = np.argsort(-calibrated, kind="stable")
        bar = max(float(np.median(calibrated)) + MARGIN, calibrated[order[0]] - SECOND_WITHIN)
        prefer = [labels[i] for i in order[:MAX_PREFER] if calibrated[i] >= bar]
        return Proposal(
            prefer,
            prompt=prompt.ref,
            scores={g: round(float(s), 3) for g, s in zip(labels, calibrated, strict=True)},
        )

    def _structured(
        self,
        message: str,
        genres: Sequence[str],
        previous: RetrievalQuery | None,
        budget: Budget | None,
        prompt: Prompt | None,
    ) -> Proposal:
        prompt = prompt or self._live("intent")
        messages = prompt.render(
            message=message,
            genres=list(genres),
            previous=previous.model_dump(exclude={"text", "count"}) if previous else None,
        )
        params = prompt.spec.params
        out = self.client.structured(
            messages,
            prompt.spec.output_schema or {"type": "object"},
            prompt=prompt.ref,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            budget=budget,
        )
        value = out.value
        vocab = set(genres)

        def names(key: str) -> list[str]:
            return [g for g in value.get(key) or [] if isinstance(g, str) and g in vocab]

        def year(key: str) -> int | None:
            v = value.get(key)
            return v if isinstance(v, int) and 1870 <= v <= 2100 else None

        moods = [m for m in value.get("mood_terms") or [] if isinstance(m, str)]
        return Proposal(
            names("include_genres"),
            names("exclude_genres"),
            moods,
            year("year_min"),
            year("year_max"),
            prompt.ref,
        )


def merge(
    base: RetrievalQuery,
    proposal: Proposal | None,
    message: str,
    previous: RetrievalQuery | None = None,
) -> RetrievalQuery:
    """`base` plus the parts of `proposal` that the message supports (module docstring)."""
    if proposal is None:
        if previous is not None and base.text == previous.text:  # a bare follow-up
            return base.model_copy(update={"prefer_genres": previous.prefer_genres})
        return base
    refused = set(base.exclude_genres)
    asked = set(base.include_genres)
    prefer = [g for g in proposal.prefer_genres if g not in refused][:MAX_PREFER]
    exclude = list(base.exclude_genres)
    if _NEGATION.search(message):
        exclude += [g for g in proposal.exclude_genres if g not in asked and g not in exclude]
    year_min, year_max = base.year_min, base.year_max
    undated = _DATED_TITLE.sub(" ", message)  # "Happy Christmas (2014)" names a film
    if year_min is None and year_max is None and _ERA.search(undated):
        low, high = proposal.year_min, proposal.year_max
        if low is None or high is None or low <= high:
            year_min, year_max = low, high
    words = set(re.findall(r"[a-z]+", message.lower()))
    moods = list(base.mood_terms) + [
        m
        for m in proposal.mood_terms
        if m.lower() not in base.mood_terms and set(re.findall(r"[a-z]+", m.lower())) <= words
    ]
    return RetrievalQuery.model_validate(
        {
            **base.model_dump(),
            "prefer_genres": prefer,
            "exclude_genres": exclude,
            "year_min": year_min,
            "year_max": year_max,
            "mood_terms": moods,
        }
    )


def eval_output(client: LLMClient, prompt: Prompt, inputs: dict, budget=None) -> dict:
    """What `intent_local` answers, for its eval cases: the proposal an embedded model makes
    (it is scored, not generated, so the generic runner cannot call it)."""
    genres = inputs.get("genres") or [g for g in GENRE_WORDS if g not in SCORED_GENRES_SKIP]
    model = IntentModel(client, None)
    proposal = model._scored(inputs["message"], genres, budget, prompt)
    return {"prefer_genres": proposal.prefer_genres, "scores": proposal.scores}
