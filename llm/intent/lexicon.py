"""The words the intent parser knows, loaded once from `lexicon.yaml` beside this module.

The vocabulary is data (phrases and what they mean, language names, number and decade
words, filler words): product people extend it by editing the YAML, and the code that
reads messages stays small. Loaded at import, validated by shape here and by meaning in
the tests; a malformed file fails the import, not a user's request.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml


@dataclass(frozen=True)
class Sense:
    """What a phrase means: genres when asked for, genres when refused, a mood term.

    ``negated`` None means "the same genres as when asked for". An empty Sense is a
    blocker: it claims a phrase ("live action", "family drama") so that its words are
    not read on their own.
    """

    genres: tuple[str, ...] = ()
    mood: str | None = None
    negated: tuple[str, ...] | None = None

    @property
    def refused(self) -> tuple[str, ...]:
        return self.genres if self.negated is None else self.negated


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _sense(entry: dict) -> Sense:
    unknown = set(entry) - {"genres", "mood", "negated"}
    if unknown:
        raise ValueError(f"lexicon.yaml: unknown keys {sorted(unknown)} in {entry}")
    negated = entry.get("negated")
    return Sense(
        tuple(entry.get("genres", ())),
        entry.get("mood"),
        tuple(negated) if negated is not None else None,
    )


_DATA = yaml.safe_load(resources.files(__package__).joinpath("lexicon.yaml").read_text("utf-8"))

LEXICON: dict[str, Sense] = {phrase: _sense(e or {}) for phrase, e in _DATA["lexicon"].items()}
# How other catalogs spell the MovieLens genres the lexicon targets.
GENRE_ALIASES: dict[str, tuple[str, ...]] = {
    genre: tuple(names) for genre, names in _DATA["genre_aliases"].items()
}
# Two-letter codes as TMDB's original_language uses them ("cn" is TMDB's Cantonese).
LANGUAGES: dict[str, str] = {str(k): str(v) for k, v in _DATA["languages"].items()}
NUMBER_WORDS: dict[str, int] = {str(k): int(v) for k, v in _DATA["number_words"].items()}
DECADE_WORDS: dict[str, int] = {str(k): int(v) for k, v in _DATA["decade_words"].items()}
# Words that carry no request of their own: a title phrase made only of these is no
# title, and a follow-up made only of these keeps the previous text.
GENERIC_WORDS = _words(_DATA["generic_words"])
FUNCTION_WORDS = _words(_DATA["function_words"])
# Greetings and small talk: a message made only of these (and generic/function words)
# has no content to search ("Hello! Hi there, how are you?").
SMALL_TALK_WORDS = _words(_DATA["small_talk_words"])
# Words that only name a genre ("comedies", "thriller"): a request made of these and
# filler describes nothing beyond its genre filter.
GENRE_WORDS = frozenset(
    phrase
    for phrase, sense in LEXICON.items()
    if " " not in phrase and sense.genres and not sense.mood
)
# Occasion phrases -> the mood they imply ("" = none): consumed, never matched to titles.
CONTEXT_PHRASES: dict[str, str] = {str(k): str(v or "") for k, v in _DATA["context"].items()}
COUNT_NOUNS = _words(_DATA["count_nouns"])
UNIT_WORDS = _words(_DATA["unit_words"])
