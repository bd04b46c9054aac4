"""Titles named in a request ("like Alien"): exact phrases first, then misspellings.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from catalog.search import TitleIndex, tokens
from llm.intent.lexicon import FUNCTION_WORDS, GENERIC_WORDS, _words
from llm.intent.patterns import (
    _LIKE_VERB_BEFORE,
    _TITLE_LIST_SEP,
    _TITLE_STOP_WORDS,
    _TITLE_TRIGGER,
    _TITLE_YEAR,
    _Lexicon,
)
from llm.intent.scan import _Found, _Scan

_TOKEN_ROWS: weakref.WeakKeyDictionary[Any, dict[str, set[int]]] = weakref.WeakKeyDictionary()


def _token_rows(titles: TitleIndex) -> dict[str, set[int]] | None:
    """Title token -> rows, built once per index: TitleIndex.search scans every title in
    Python, too slow to call for each candidate phrase, and most candidates match nothing."""
    if getattr(titles, "titles", None) is None or getattr(titles, "item_ids", None) is None:
        return None  # a duck-typed index: trust its search
    if (index := _TOKEN_ROWS.get(titles)) is None:
        index = {}
        for row, title in enumerate(titles.titles):
            for token in title:
                index.setdefault(token, set()).add(row)
        _TOKEN_ROWS[titles] = index
    return index


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _resolve_title(titles: TitleIndex, phrase: str, exact: bool, shrunk: bool) -> int | None:
    """The best title holding the phrase's words in order, as whole words, or None.

    TitleIndex.search also accepts a prefix and words in any order (type-ahead); here
    that would turn "Heat in the 90s" into "In the Heat of the Night". A single word
    cut from a longer phrase must be a whole title or most of a short one, or "wes
    anderson movies" shrinks to "wes" and finds "Wes Craven's New Nightmare". Ties are
    broken as search breaks them: exact titles, then shorter ones, then popular ones.
    """
    wanted = tokens(phrase)
    index = _token_rows(titles)
    if index is None:
        hits = titles.search(phrase, 1)
        return hits[0][0] if hits else None
    best: tuple[float, float, int] | None = None
    for row in set.intersection(*(index.get(t, set()) for t in wanted)):
        have = titles.titles[row]
        if have != wanted and (exact or not _contains_run(have, wanted)):
            continue
        if shrunk and have != wanted and len(wanted) == 1 and len(have) > 3:
            continue
        score = (1.0 if have == wanted else 0.5) * len(wanted) / max(len(have), len(wanted))
        key = (-score, -float(titles.popularity[row]), int(titles.item_ids[row]))
        best = key if best is None or key < best else best
    return None if best is None else best[2]


# Fuzzy titles, tried on a phrase only where its exact reading found nothing. A misspelt
# word may be a few edits from its title word (optimal string alignment, so a swap is
# one edit): one edit from 3 letters on, two from 10 ("fictoin", "terminater",
# "happpiness"), none below 3. The phrase as a whole must then reach 85 on rapidfuzz's
# fuzz.ratio, 100 * (1 - indel distance / total length), over its words without the
# filler it shares with the title ("pulp fictoin" 91.7, "matrx" 90.9, "lord rigns" 90),
# which keeps several typos in a short phrase out. "a forced movie" is no "Kentucky
# Fried Movie" ("movie" is filler, "forced" two edits from "fried").
FUZZY_THRESHOLD = 85.0
FUZZY_MIN_CHARS = 5  # fewer letters in all are a typo away from too many titles
FUZZY_LONG_WORD = 10  # from this length a word may have two typos
_NEAR_MEMO_SIZE = 4096
_FILLER = GENERIC_WORDS | FUNCTION_WORDS
_LEADING_THE = re.compile(r"[\"']?the\s", re.IGNORECASE)  # "the matrx": a name, if misspelt


@dataclass
class _FuzzyIndex:
    """A TitleIndex's words, by length, and a memo of the rows holding a typo of a word.

    Candidates come from the phrase's words ("matrx" -> rows with "matrix"): scoring a
    few titles instead of all of them keeps a miss under a millisecond, and a typo can
    only be among words of about its own length. The memo is cleared when full, so odd
    input cannot grow it.
    """

    rows: dict[str, set[int]]
    by_length: dict[int, list[str]]
    compact: dict[str, set[int]]  # a title's words run together -> rows
    near: dict[str, frozenset[int]] = field(default_factory=dict)

    def rows_near(self, word: str) -> frozenset[int]:
        """Rows with ``word`` or a typo of it (see _typo)."""
        if (hit := self.near.get(word)) is None:
            close = [word] if word in self.rows else []
            if len(word) >= 3:
                budget = _typo_budget(word)
                for n in range(len(word) - budget, len(word) + budget + 1):
                    found = process.extract(
                        word,
                        self.by_length.get(n, ()),
                        scorer=OSA.distance,
                        score_cutoff=budget,
                        limit=None,
                    )
                    close.extend(match for match, _, _ in found)
            hit = frozenset(row for match in close for row in self.rows[match])
            if len(self.near) >= _NEAR_MEMO_SIZE:
                self.near.clear()
            self.near[word] = hit
        return hit


_FUZZY: weakref.WeakKeyDictionary[Any, _FuzzyIndex] = weakref.WeakKeyDictionary()


def _fuzzy_index(titles: TitleIndex) -> _FuzzyIndex | None:
    if (rows := _token_rows(titles)) is None:
        return None  # a duck-typed index has no tokens to be near
    if (index := _FUZZY.get(titles)) is None:
        compact: dict[str, set[int]] = {}
        for row, title in enumerate(titles.titles):
            compact.setdefault("".join(title), set()).add(row)
        by_length: dict[int, list[str]] = {}
        for word in rows:
            by_length.setdefault(len(word), []).append(word)
        index = _FUZZY[titles] = _FuzzyIndex(rows, by_length, compact)
    return index


def _resolve_fuzzy(titles: TitleIndex, phrase: _Phrase, exact: bool) -> int | None:
    """The title the phrase most likely misspells, or None.

    Without a dictionary, a word the titles lack may be a typo or just English
    ("wanting" is one letter from "Waiting...", "aging" from "Raging Bull"), so the
    less a phrase says, the more it must show that it names a film:

    - lowercase, it needs a word no title has: "forest gump" is two English words,
      "Forest Gump" a name, which may be corrected;
    - with one word besides filler, it must be capitalised or follow "the", spell a
      whole title, and end the clause or come before filler ("the matrx", "Inceptoin
      with more romance"; not "the wanting coast").

    Ties go as in search: closer spelling, then whole and shorter titles, then popular.
    """
    index = _fuzzy_index(titles)
    wanted = tokens(phrase.text)
    content = [word for word in dict.fromkeys(wanted) if word not in _FILLER]
    if index is None or sum(map(len, content)) < FUZZY_MIN_CHARS:
        return None
    cased = phrase.text != phrase.text.lower()
    single = len(content) == 1
    if single and not (phrase.bounded and (cased or _LEADING_THE.match(phrase.text))):
        return None
    if not cased and all(word in index.rows for word in content):
        return None
    best: tuple[float, float, float, int] | None = None
    for row in _candidates(index, wanted, content):
        have = titles.titles[row]
        for run in _runs(have, len(wanted), whole=exact or single):
            if not (score := _spelling(wanted, run)):
                continue
            coverage = (1.0 if len(run) == len(have) else 0.5) * len(run) / len(have)
            key = (
                -round(score, 1),
                -coverage,
                -float(titles.popularity[row]),
                int(titles.item_ids[row]),
            )
            best = key if best is None or key < best else best
    return None if best is None else best[3]


def _candidates(index: _FuzzyIndex, wanted: list[str], content: list[str]) -> set[int]:
    """Rows the phrase may misspell: the titles with the same letters ("spiderman"), and

    - for a phrase of one or two words, those with each word or a typo of it ("Jurasic
      Prak", "the matrx");
    - for a longer one, those with all of its words but one, as they are: looking a word
      up among typos is a pass over the vocabulary, which a long phrase would pay per
      word and again for every way it can shrink, and one typo is the usual case.
    """
    rows = set(index.compact.get("".join(wanted), ()))
    if len(content) <= 2:
        first, *others = sorted((index.rows_near(word) for word in content), key=len)
        rows.update(first.intersection(*others))
    else:
        counts: Counter[int] = Counter()
        for word in content:
            counts.update(index.rows.get(word, ()))
        rows.update(row for row, n in counts.items() if n >= len(content) - 1)
    return rows


def _runs(have: list[str], k: int, whole: bool) -> Iterator[list[str]]:
    """The runs of a title's words that a k-word phrase may spell: k words anywhere, or
    the whole title when it is a word longer or shorter ("spiderman" = "spider man")."""
    if not whole:
        yield from (have[start : start + k] for start in range(len(have) - k + 1))
    if whole or len(have) in (k - 1, k + 1):
        yield have


def _spelling(wanted: list[str], run: list[str]) -> float:
    """fuzz.ratio of the phrase and the run when every word that differs is a typo of its
    counterpart (see FUZZY_THRESHOLD), else 0. A word that differs only by letters added
    at an edge ("rainy"/"rain", "disorganized") is another word, so it passes only as
    the one difference of a phrase of several words ("Silence of the Lamb")."""
    if len(wanted) != len(run):  # merged or split words: only the letters can be compared
        mine, theirs = "".join(wanted), "".join(run)
        if _affixed(mine, theirs) or not _typo(mine, theirs):
            return 0.0
        return fuzz.ratio(" ".join(wanted), " ".join(run), score_cutoff=FUZZY_THRESHOLD)
    mine: list[str] = []
    theirs: list[str] = []
    differing = affixed = 0
    for word, other in zip(wanted, run, strict=True):
        if word != other:
            if not _typo(word, other):
                return 0.0  # most runs stop here, so it comes first
            differing += 1
            affixed += _affixed(word, other)
        elif word in _FILLER:
            continue
        mine.append(word)
        theirs.append(other)
    if not differing:
        return 0.0  # nothing misspelt: the exact reading's business
    if affixed and (differing > 1 or len(mine) < 2):
        return 0.0
    return fuzz.ratio(" ".join(mine), " ".join(theirs), score_cutoff=FUZZY_THRESHOLD)


def _typo(word: str, other: str) -> bool:
    """Whether ``word`` may be ``other`` mistyped: the edit budget above FUZZY_THRESHOLD."""
    if len(word) < 3 or len(other) < 3:
        return False  # "2" for "3", "of" for "on": other words, not typos
    budget = _typo_budget(word)
    return OSA.distance(word, other, score_cutoff=budget) <= budget


def _typo_budget(word: str) -> int:
    return 2 if len(word) >= FUZZY_LONG_WORD else 1


def _affixed(word: str, other: str) -> bool:
    """One word is the other with letters added at an end: "rainy", "accidents", "raging"."""
    if word == other:
        return False
    return any(a.startswith(b) or a.endswith(b) for a, b in ((word, other), (other, word)))


def _fuzzy_allowed(phrase: str, lexicon: _Lexicon) -> bool:
    """False for phrases that are words, however typed: "Mobster" and "Melancholy" are
    lexicon words capitalised, not misspelt titles, and lowercase "horor movies" is a
    misspelt request."""
    found = [word for word in tokens(phrase) if word not in _FILLER]
    if all(word in lexicon.words for word in found):
        return False
    if phrase != phrase.lower():
        return True
    plain = _plain_words(lexicon.words)
    return not all(
        word in plain
        or word in lexicon.senses  # "scifi", "romcom"
        or process.extractOne(word, plain, scorer=fuzz.ratio, score_cutoff=FUZZY_THRESHOLD)
        for word in found
    )


@lru_cache(maxsize=32)
def _plain_words(lexicon_words: frozenset[str]) -> frozenset[str]:
    """Words that are no title: the lexicon's and filler. Cached per lexicon (a frozenset
    keeps its hash): built for every phrase, the union cost more than reading it."""
    return lexicon_words | _FILLER


_ABBREVIATIONS = _words("dr mr mrs ms st vs jr sr mt ft no vol pt")


def _window(scan: _Scan, pos: int, limit: int = 8) -> list[tuple[int, int, str, bool]]:
    """Words after ``pos`` up to a clause boundary: (start, end, bare word, comma after).

    The end keeps quotes (so they leave with the title) but not trailing punctuation.
    Commas do not end the window ("Crouching Tiger, Hidden Dragon"); ; ! ? do, and so
    does a period unless it closes an abbreviation ("Dr. Strangelove").
    """
    words: list[tuple[int, int, str, bool]] = []
    for match in re.finditer(r"\S+", scan.work[pos:]):
        start, raw = pos + match.start(), match.group()
        bare = raw.strip("\"',;!?.()[]")
        if bare.lower() in _TITLE_STOP_WORDS or raw[0] in "([":
            break
        kept = raw.rstrip(",;!?)]")
        ends = bool(re.search(r"[;!?)\]]", raw[len(kept) :]))
        if kept.rstrip("\"'").endswith(".") and bare.lower() not in _ABBREVIATIONS:
            kept, ends = kept.rstrip("\"'").rstrip("."), True
        if bare:
            words.append((start, start + len(kept), bare, "," in raw[len(kept) :]))
        if ends or len(words) >= limit:
            break
    return words


@dataclass(frozen=True)
class _Phrase:
    """A phrase that may name a title, as typed, and where it ends.

    ``shrunk``: cut mid-clause, not at a comma (a cut single word must be most of its
    title, see _resolve_title). ``bounded``: what follows, if anything, is a comma or
    filler, so a lone word here is all the user named ("the matrx with more romance").
    """

    text: str
    end: int
    shrunk: bool
    bounded: bool


def _title_phrases(
    scan: _Scan, words: list[tuple[int, int, str, bool]], lexicon: _Lexicon, exact: bool
) -> list[_Phrase]:
    """The window's phrases from its first word, longest first, minus those that cannot
    be titles: ending in a function word, cutting a capitalised name, or plain words."""
    plain = _plain_words(lexicon.words)
    cased = scan.original != scan.original.lower() and scan.original != scan.original.upper()
    phrases: list[_Phrase] = []
    for n in range(len(words), 0, -1):
        last, rest = words[n - 1], words[n:]
        if last[2].lower() in FUNCTION_WORDS:
            continue  # titles do not end in "and", "the", "with"
        if rest and not last[3]:
            if cased and rest[0][2][:1].isupper():
                continue  # "Wes Anderson": a capitalised name goes on, don't cut it
            if exact and rest[0][2].lower() not in ("and", "or", "&"):
                continue
        phrase = scan.original[words[0][0] : last[1]]
        found = tokens(phrase)
        if not found or all(t in _FILLER for t in found):
            continue
        if phrase == phrase.lower() and all(t in plain for t in found):
            continue  # "like horror", "like alien": genre words, not a title
        shrunk = bool(rest) and not last[3]
        bounded = not shrunk or rest[0][2].lower() in _FILLER
        phrases.append(_Phrase(phrase, last[1], shrunk, bounded))
    return phrases


def _title_at(
    scan: _Scan, pos: int, titles: TitleIndex, lexicon: _Lexicon, exact: bool
) -> tuple[int, int] | None:
    """(item id, end offset) of the longest title phrase starting at ``pos``.

    Each phrase is read exactly, then fuzzily, before it is shrunk: "Lord of the Rigns"
    must be corrected whole before "Lord" alone finds "Lord of War". ``exact`` is for
    the later names of a list ("like Heat, Ronin and Collateral"): they must be whole
    titles and end where the list item ends.
    """
    for phrase in _title_phrases(scan, _window(scan, pos), lexicon, exact):
        item_id = _resolve_title(titles, phrase.text, exact, phrase.shrunk)
        if item_id is None:
            # the fuzzy step mostly finds nothing, so its costlier veto waits for a find
            item_id = _resolve_fuzzy(titles, phrase, exact)
            if item_id is not None and not _fuzzy_allowed(phrase.text, lexicon):
                item_id = None
        if item_id is not None:
            return item_id, _past_year(scan, phrase.end)
    return None


def _past_year(scan: _Scan, end: int) -> int:
    """Where a title ends once a "(1995)" written after it is taken along."""
    year = _TITLE_YEAR.match(scan.work, end)
    return year.end() if year else end


def _extract_titles(scan: _Scan, titles: TitleIndex, lexicon: _Lexicon, found: _Found) -> None:
    for trigger in scan.matches(_TITLE_TRIGGER):
        if trigger.group("like"):
            before = scan.words_before(trigger.start(), 1)
            after = scan.work[trigger.end() :].lower().split()[:1]
            if (before and before[0] in _LIKE_VERB_BEFORE) or after == ["to"]:
                continue
        hit = _title_at(scan, trigger.end(), titles, lexicon, exact=False)
        if hit is None:
            continue
        found.similar.append(hit[0])
        scan.consume(trigger.start(), hit[1])
        end = hit[1]
        # "like Heat, Ronin and Collateral": later names must be whole titles (or misspell one)
        while (sep := _TITLE_LIST_SEP.match(scan.work, end)) and (
            more := _title_at(scan, sep.end(), titles, lexicon, exact=True)
        ):
            found.similar.append(more[0])
            scan.consume(end, more[1])
            end = more[1]
