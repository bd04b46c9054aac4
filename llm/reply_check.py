"""Is an LLM reply fit to show? Checks that reject it, and a gate for streamed replies.

The embedded SmolLM2 was seen to answer "You asked for something older: comedy, comedy,
comedy, ..." (one word about 30 times) and "You asked for horror from the 1980s" when no
year was asked for (its few-shot example's decade). A reply is shown only if:

- it is one short, finished paragraph (not empty, ends a sentence: a reply cut by
  max_tokens or a deadline is not shown; at most `MAX_WORDS` words; no prompt
  scaffolding such as "Top picks:" copied back);
- it does not repeat itself: no word (other than function words) more than
  `MAX_WORD_REPEATS` times, no word three times in a row, no bigram `MAX_BIGRAM_REPEATS`
  times;
- every constraint it states is one the parsed query holds: years and decades inside
  the query's year bounds, genres the query asked for, implied or refused, a runtime
  equal to the query's limit. A year or genre word the person wrote, or a page item's
  release year, is allowed too; words inside a page title never count (the titles are
  blanked before these checks, so "2001: A Space Odyssey" is not a year);
- it names no catalog title that is not on the page (or named by the person: "like Alien").

Anything else is replaced by the template reply (llm/reply.py), which says only what
was understood. The checks are prefix-monotone (a failing text keeps failing as it
grows, except for the empty check), which is what lets `StreamGate` show a streamed
reply word by word: each complete word is shown only once the text up to it passes, so
a reply that goes wrong is cut where it goes wrong and replaced, and what was shown
before that point was itself fit to show.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

from llm.intent import RetrievalQuery

if TYPE_CHECKING:  # llm.explain uses `repetition` from here
    from llm.explain import TitleGuard

MAX_WORDS = 80
MAX_WORD_REPEATS = 3  # a content word may occur at most this often in one reply
MAX_RUN = 2  # the same word at most twice in a row ("very, very" yes; "comedy, comedy, comedy" no)
MAX_BIGRAM_REPEATS = 2  # a word pair at most twice
_FUNCTION_WORDS = """
a an the and or but with without from in of for to on at by as is are was be it its
this that these those you your i me my we our they them their here there try some if so not no
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())
# Prompt scaffolding a small model copies back from the few-shot layout.
_COMPLETE = re.compile(r"[.!?\u2026][\"')\u201d]?\s*$")
_SCAFFOLD = re.compile(r"\b(?:request|understood|top picks)\s*:", re.I)
_TOKEN = re.compile(r"\u0001\d+\u0001|[a-z0-9]+(?:'[a-z]+)?")
_MARK = "\u0001"  # a blanked page title is "\u0001<n>\u0001", one token per title

# Genre words a reply may state, by MovieLens genre. Nouns and adjectives that name a
# genre, not moods: "scary" or "funny" are the person's own words or not claims at all.
GENRE_WORDS: dict[str, str] = {
    "comedy": "Comedy",
    "comedies": "Comedy",
    "comedic": "Comedy",
    "horror": "Horror",
    "thriller": "Thriller",
    "thrillers": "Thriller",
    "drama": "Drama",
    "dramas": "Drama",
    "romance": "Romance",
    "romances": "Romance",
    "romantic": "Romance",
    "sci-fi": "Sci-Fi",
    "science fiction": "Sci-Fi",
    "western": "Western",
    "westerns": "Western",
    "musical": "Musical",
    "musicals": "Musical",
    "documentary": "Documentary",
    "documentaries": "Documentary",
    "animated": "Animation",
    "animation": "Animation",
    "cartoon": "Animation",
    "cartoons": "Animation",
    "war film": "War",
    "war films": "War",
    "war movie": "War",
    "war movies": "War",
    "crime": "Crime",
    "mystery": "Mystery",
    "mysteries": "Mystery",
    "fantasy": "Fantasy",
    "action": "Action",
    "adventure": "Adventure",
    "adventures": "Adventure",
    "film noir": "Film-Noir",
    "noir": "Film-Noir",
    "family film": "Children",
    "family films": "Children",
    "family movie": "Children",
    "family movies": "Children",
    "children's": "Children",
}
_GENRE = re.compile(
    r"(?<![\w-])("
    + "|".join(
        re.escape(w).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]?")
        for w in sorted(GENRE_WORDS, key=len, reverse=True)
    )
    + r")(?![\w-])",
    re.I,
)


def _squash(words: str) -> str:
    """ "Sci fi", "sci-fi" and "scifi" alike."""
    return re.sub(r"[\s-]+", "", words.lower())


_GENRE_OF = {_squash(w): g for w, g in GENRE_WORDS.items()}
_NEGATED = re.compile(r"\b(?:no|not|without|nothing|never|avoid|skip|minus)\W+(?:\w+\W+)?$")
_DECADE_WORDS = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
}
_DECADE = re.compile(
    r"(?<!\w)(?:(?P<full>1[89]\d0|20\d0)'?s|'?(?P<short>\d0)'?s|(?P<word>"
    + "|".join(_DECADE_WORDS)
    + r"))(?!\w)",
    re.I,
)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_RUNTIME = re.compile(
    r"(?<!\w)(?P<n>\d{1,3}(?:\.\d)?|an?|one|two|three)\s*-?\s*"
    r"(?P<unit>minutes?|mins?|hours?|hrs?)(?!\w)",
    re.I,
)
_NUMBER_WORDS = {"a": 1.0, "an": 1.0, "one": 1.0, "two": 2.0, "three": 3.0}


@dataclass(frozen=True)
class ReplyContext:
    """What a reply may say: the parsed query, the person's words, the page."""

    query: RetrievalQuery
    message: str
    summary: str  # llm.reply.describe(query): the template's own words are always allowed
    titles: Sequence[str]  # every title on the page
    years: Collection[int] = ()  # the page items' release years

    @classmethod
    def of_cards(
        cls, query: RetrievalQuery, message: str, summary: str, cards: Sequence[dict]
    ) -> ReplyContext:
        """From the page's cards ({"title", "year", ...})."""
        years = {int(c["year"]) for c in cards if c.get("year")}
        return cls(query, message, summary, [c["title"] for c in cards], years)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    check: str | None = None  # the failed check: empty, incomplete, length, scaffolding,
    # repetition, year, genre, runtime, title
    detail: str | None = None

    @classmethod
    def passed(cls) -> Verdict:
        return cls(True)


def _blank_titles(text: str, titles: Sequence[str]) -> str:
    """The text with each page title replaced by its own mark (longest titles first)."""
    names = sorted({t.strip() for t in titles if t.strip()}, key=len, reverse=True)
    if not names:
        return text
    index = {n.lower(): i for i, n in enumerate(names)}
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.I)
    return pattern.sub(lambda m: f" {_MARK}{index[m.group(0).lower()]}{_MARK} ", text)


def repetition(text: str) -> str | None:
    """What repeats beyond the thresholds, or None. With page titles blanked, a title
    counts as one token: its own words are not the model repeating itself."""
    tokens = _TOKEN.findall(text.lower())
    run = 1
    for prev, tok in pairwise(tokens):
        run = run + 1 if tok == prev else 1
        if run > MAX_RUN:
            return f"{_shown(tok)!r} {run} times in a row"
    counts = Counter(t for t in tokens if t not in FUNCTION_WORDS)
    word, n = counts.most_common(1)[0] if counts else ("", 0)
    if n > MAX_WORD_REPEATS:
        return f"{_shown(word)!r} {n} times"
    pairs = Counter(pairwise(tokens))
    (pair, n) = pairs.most_common(1)[0] if pairs else (("", ""), 0)
    if n > MAX_BIGRAM_REPEATS:
        return f"{' '.join(_shown(t) for t in pair)!r} {n} times"
    return None


def _shown(token: str) -> str:
    return "<a title>" if token.startswith(_MARK) else token


def _decade_of(match: re.Match[str]) -> int:
    if match.group("full"):
        return int(match.group("full"))
    if match.group("short"):
        short = int(match.group("short"))
        return 2000 + short if short <= 20 else 1900 + short
    return _DECADE_WORDS[match.group("word").lower()]


def unasked_years(text: str, ctx: ReplyContext) -> str | None:
    """A decade or year the query's bounds do not hold (nor the message, nor the page)."""
    q = ctx.query
    bounded = q.year_min is not None or q.year_max is not None
    low = q.year_min if q.year_min is not None else -(10**6)
    high = q.year_max if q.year_max is not None else 10**6
    said = ctx.message.lower()
    for match in _DECADE.finditer(text):
        decade = _decade_of(match)
        if match.group(0).lower().strip("'") in said:
            continue
        if not (bounded and decade <= high and decade + 9 >= low):
            return f"{match.group(0)!r} (query years {q.year_min}-{q.year_max})"
    text = _DECADE.sub(" ", text)
    for match in _YEAR.finditer(text):
        year = int(match.group(0))
        if year in ctx.years or match.group(0) in said:
            continue
        if not (bounded and low - 1 <= year <= high + 1):  # "before 1980" for year_max 1979
            return f"{year} (query years {q.year_min}-{q.year_max})"
    return None


def _negated(text: str, at: int) -> bool:
    return bool(_NEGATED.search(text[max(0, at - 30) : at]))


def _affirmed(word: str, said: str) -> bool:
    """`word` occurs in `said` other than negated ("no horror" does not ask for horror)."""
    pattern = rf"(?<!\w){re.escape(word)}(?!\w)"
    return any(not _negated(said, m.start()) for m in re.finditer(pattern, said))


def unasked_genres(text: str, ctx: ReplyContext) -> str | None:
    """A genre word the query does not hold nor the person said; a refused genre only
    after a negation ("no horror", never "you asked for horror")."""
    q = ctx.query
    held = {*q.include_genres, *q.prefer_genres}
    said = " ".join([ctx.message, ctx.summary, *q.mood_terms]).lower()
    for match in _GENRE.finditer(text):
        word = match.group(0).lower()
        genre = _GENRE_OF.get(_squash(word))
        if genre in held or _affirmed(word, said):
            continue
        if genre in q.exclude_genres and _negated(text, match.start()):
            continue
        return f"{word!r} (query genres {sorted(held) or 'none'})"
    return None


def unasked_runtime(text: str, ctx: ReplyContext) -> str | None:
    """A runtime other than the query's limit (or one the person wrote)."""
    limit = ctx.query.max_runtime
    said = ctx.message.lower()
    for match in _RUNTIME.finditer(text):
        raw = match.group("n").lower()
        value = _NUMBER_WORDS.get(raw) or float(raw)
        minutes = value * 60 if match.group("unit").lower().startswith("h") else value
        if limit is not None and round(minutes) == limit:
            continue
        if raw in said and match.group("unit").lower()[:3] in said:
            continue
        return f"{match.group(0)!r} (query max_runtime {limit})"
    return None


@dataclass
class ReplyChecker:
    """The checks of the module docstring over one catalog's titles."""

    guard: TitleGuard
    max_words: int = MAX_WORDS

    def check(self, text: str, ctx: ReplyContext, final: bool = True) -> Verdict:
        """`final` False: `text` is a prefix of a streamed reply (it may still be empty)."""
        if final and not text.strip():
            return Verdict(False, "empty", "no text")
        if final and not _COMPLETE.search(text):  # cut by max_tokens or a deadline
            return Verdict(False, "incomplete", text.rstrip()[-40:])
        if len(text.split()) > self.max_words:
            return Verdict(False, "length", f"more than {self.max_words} words")
        if _SCAFFOLD.search(text):
            return Verdict(False, "scaffolding", _SCAFFOLD.search(text).group(0))
        blanked = _blank_titles(text, ctx.titles)
        if problem := repetition(blanked):
            return Verdict(False, "repetition", problem)
        for name, found in (
            ("year", unasked_years),
            ("genre", unasked_genres),
            ("runtime", unasked_runtime),
        ):
            if problem := found(blanked, ctx):
                return Verdict(False, name, problem)
        named = self.guard.mentioned(f"{ctx.message}\n{ctx.summary}")  # "like Star Wars"
        unknown = self.guard.mentioned(text) - {t.lower() for t in ctx.titles} - named
        if unknown:
            return Verdict(False, "title", ", ".join(sorted(unknown))[:200])
        return Verdict.passed()


def title_start(text: str, titles: Sequence[str]) -> int:
    """Where a page title may be starting at the end of `text` (its length if nowhere):
    "try 2001:" must wait for "A Space Odyssey" before its year is checked."""
    low = text.lower()
    names = [t.lower().strip() for t in titles if t.strip()]
    longest = max((len(n) for n in names), default=0)
    for start in range(max(0, len(low) - longest), len(low)):
        if start > 0 and low[start - 1].isalnum():
            continue  # not at a word start
        tail = low[start:].rstrip()
        if tail and not tail[0].isspace() and any(n.startswith(tail) and n != tail for n in names):
            return start
    return len(text)


@dataclass
class StreamGate:
    """Shows a streamed reply only as far as it passes: complete words, each released
    once the text up to it passes `checker` (module docstring). `feed` returns the text
    that may be shown now; after a failure `verdict` says why and nothing more is shown
    (the caller stops generating and shows the template instead)."""

    checker: ReplyChecker
    ctx: ReplyContext
    text: str = ""
    shown: int = 0
    verdict: Verdict = field(default_factory=Verdict.passed)

    def feed(self, piece: str) -> str:
        if not self.verdict.ok:
            return ""
        self.text += piece
        cut = max(self.text.rfind(" "), self.text.rfind("\n"))  # hold back a partial word
        cut = min(cut, title_start(self.text[:cut], self.ctx.titles))
        if cut <= self.shown:
            return ""
        return self._release(self.text[:cut], final=False)

    def finish(self) -> str:
        """The rest of the text, if the whole reply passes; else "" and a failed verdict."""
        if not self.verdict.ok:
            return ""
        return self._release(self.text.rstrip(), final=True)

    def _release(self, upto: str, final: bool) -> str:
        verdict = self.checker.check(upto, self.ctx, final=final)
        if not verdict.ok:
            self.verdict = verdict
            return ""
        out = upto[self.shown :]
        self.shown = len(upto)
        return out
