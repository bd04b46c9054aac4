"""Titles a person mentions in conversation, and what they say about them.

Conversations name films the way ReDial's people write them, "I loved The Lion King
(1994)": no "like" before the title, a year after it. The year picks that year's film
among remakes and is never a year filter (that year's films are not what was asked
for). Each mentioned title is read with its clause ("I hated X", "I've seen X", "X was
great"): disliked when the clause is negative, seen when it only says it was watched,
liked otherwise (taste: the two-tower user tower and the neighbours of these titles).
Everything mentioned is excluded from the picks by chat, whatever was said about it.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from catalog.search import TitleIndex, tokens
from llm.intent.lexicon import CONTEXT_PHRASES
from llm.intent.patterns import _phrase_pattern
from llm.intent.scan import _Found, _Scan
from llm.intent.titles import _token_rows

_DATED = re.compile(r"\(\s*(\d{4})\s*\)")
_SENTENCE_END = re.compile(r"[.!?;\n]")
MAX_TITLE_WORDS = 12  # the longest phrase before "(YYYY)" that is tried as a title
YEAR_SLACK = 1  # release years differ by a year between sources (festival vs release)

_CLAUSE_BREAK = re.compile(r"[.!?;\n]|\b(?:but|though|although|however|whereas)\b", re.I)
_NEGATIVE = re.compile(
    r"\b(?:didn'?t|did\s+not|don'?t|do\s+not|doesn'?t|not\s+(?:a|really\s+a)\s+(?:big\s+)?fan"
    r"|hate[ds]?|hating|dislike[ds]?|boring|bored|wasn'?t\s+(?:good|great|funny|for)"
    r"|couldn'?t\s+stand|awful|terrible|worst|not\s+(?:really\s+)?into|not\s+for\s+me"
    r"|overrated|meh)\b",
    re.IGNORECASE,
)
_UNSEEN = re.compile(r"\b(?:haven'?t|have\s+not|never|not)\s+(?:yet\s+)?(?:seen|watched)\b", re.I)
_SEEN = re.compile(r"\b(?:seen|saw|watched|already)\b", re.IGNORECASE)
_POSITIVE = re.compile(
    r"\b(?:love[ds]?|loving|like[ds]?|enjoy(?:ed|s)?|favou?rites?|great|amazing|awesome"
    r"|fan\s+of|good|fun|best|brilliant|classic)\b",
    re.IGNORECASE,
)
# "I already saw those", "I've seen them all": the page just shown was seen.
SEEN_SHOWN = re.compile(
    r"\b(?:already|i'?ve|have|i)\s+(?:already\s+)?(?:seen|watched|saw)\s+(?:those|these|them"
    r"|all\s+of\s+(?:those|these|them)|both(?:\s+of\s+them)?|all|that\s+one|those\s+ones)\b"
    r"|\bseen\s+(?:them|those|these)\s+(?:all|already|before)\b",
    re.IGNORECASE,
)
_CONTEXT = re.compile(
    r"(?<![\w])(?:"
    + "|".join(_phrase_pattern(p) for p in sorted(CONTEXT_PHRASES, key=lambda p: (-len(p), p)))
    + r")(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    """A title named in the message: its id, where it was written, and what was said."""

    item_id: int
    start: int
    end: int
    stance: str  # "liked", "seen" or "disliked"


def resolve_dated(titles: TitleIndex, name: str, year: int) -> int | None:
    """The film called exactly `name` released in `year` (within YEAR_SLACK), or None.

    Exact whole-title tokens ("The Lion King" is "Lion King, The"), so a phrase that only
    ends in a title ("my kids loved Up") finds nothing until it is shrunk to the title.
    """
    wanted = tokens(name)
    if not wanted:
        return None
    rows = _rows_with(titles, wanted)
    years = getattr(titles, "years", None)
    best: tuple[float, float, int] | None = None
    for row in rows:
        if titles.titles[row] != wanted:
            continue
        released = float(years[row]) if years is not None else np.nan
        gap = abs(released - year) if not np.isnan(released) else YEAR_SLACK + 0.5
        if gap > YEAR_SLACK:
            continue
        key = (gap, -float(titles.popularity[row]), int(titles.item_ids[row]))
        best = key if best is None or key < best else best
    return None if best is None else best[2]


def _rows_with(titles: TitleIndex, wanted: list[str]) -> set[int]:
    index = _token_rows(titles)
    if index is None:
        return {row for row, have in enumerate(titles.titles) if have == wanted}
    return set.intersection(*(index.get(t, set()) for t in wanted))


def _stance(text: str, start: int, end: int) -> str:
    """What the clause around text[start:end] says about the title written there."""
    before = [m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)]
    after = _CLAUSE_BREAK.search(text, end)
    clause = text[before[-1] if before else 0 : after.start() if after else len(text)]
    clause = clause[: start - (before[-1] if before else 0)] + " " + clause[end - start :]
    if _NEGATIVE.search(clause):
        return "disliked"
    if _UNSEEN.search(clause):
        return "liked"  # "I haven't seen X": a lead, as a suggestion accepted
    if _SEEN.search(clause) and not _POSITIVE.search(clause):
        return "seen"
    return "liked"


def extract_dated_titles(scan: _Scan, titles: TitleIndex, found: _Found) -> None:
    """Consume every "Name (YYYY)": the film (longest exact title before the year), or at
    least the year, which is never left behind to become a year filter."""
    for match in scan.matches(_DATED):
        year = int(match.group(1))
        ends = [m.end() for m in _SENTENCE_END.finditer(scan.work, 0, match.start())]
        start = ends[-1] if ends else 0
        words = list(re.finditer(r"\S+", scan.work[start : match.start()]))[-MAX_TITLE_WORDS:]
        hit = None
        for word in words:  # the longest phrase first
            phrase_start = start + word.start()
            phrase = scan.original[phrase_start : match.start()]
            if not scan.free(phrase_start, match.start()):
                continue
            if (item := resolve_dated(titles, phrase, year)) is not None:
                hit = (item, phrase_start)
                break
        if hit is None:
            scan.consume(match.start(), match.end())
            continue
        item, phrase_start = hit
        stance = _stance(scan.original, phrase_start, match.end())
        found.mentions.append(Mention(item, phrase_start, match.end(), stance))
        scan.consume(phrase_start, match.end())


def extract_context(scan: _Scan, found: _Found) -> None:
    """Occasion words ("rainy Sunday", "tonight", "date night") are no content to match
    against titles: consumed, and replaced by the mood they imply where they imply one."""
    for match in scan.matches(_CONTEXT):
        mood = CONTEXT_PHRASES[_normal(match.group())]
        scan.consume(match.start(), match.end())
        if mood:
            found.context_moods.append(mood)
    for match in scan.matches(SEEN_SHOWN):
        scan.consume(match.start(), match.end())
        found.seen_shown = True


def _normal(phrase: str) -> str:
    """A matched context phrase as its key in lexicon.yaml (spaces and hyphens as one)."""
    wanted = re.sub(r"[\s-]+", "", phrase.lower()).replace("'", "")
    for key in CONTEXT_PHRASES:
        if re.sub(r"[\s-]+", "", key).replace("'", "") == wanted:
            return key
    raise KeyError(phrase)
