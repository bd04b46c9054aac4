"""Runtime, years, count and language: the constraints read before genre and mood words.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from datetime import date

from llm.intent.lexicon import (
    COUNT_NOUNS,
    DECADE_WORDS,
    FUNCTION_WORDS,
    LANGUAGES,
    NUMBER_WORDS,
    UNIT_WORDS,
    _words,
)
from llm.intent.patterns import (
    _BOUND_FILLER,
    _BOUND_NEGATIONS,
    _CLASSIC,
    _COUNT_AFTER_VERB,
    _COUNT_LEAD,
    _LANGUAGE,
    _LANGUAGE_NEGATED,
    _LONGER,
    _NEWER,
    _NO_SUBTITLES,
    _NOT_TOO_LONG,
    _NUMBER_TOKEN,
    _OLDER,
    _RECENT,
    _RUNTIME_AFTER,
    _RUNTIME_BEFORE,
    _SHORT,
    _SHORTER,
    _THIS_YEAR,
    _YEAR_BOUND,
    _YEAR_PERIOD,
    _YEAR_RANGE,
    _Lexicon,
)
from llm.intent.query import (
    CLASSIC_SPAN,
    CLASSIC_YEAR_MAX,
    MAX_COUNT,
    NOT_TOO_LONG_RUNTIME,
    OLD_YEARS_AGO,
    RECENT_WINDOW,
    SHORT_RUNTIME,
    SHORTER_FLOOR,
    SHORTER_STEP,
    YEAR_CEILING,
    YEAR_FLOOR,
    RetrievalQuery,
)
from llm.intent.scan import _Found, _Scan


def _word_or_number(text: str) -> float:
    text = text.lower()
    if text in ("a", "an"):
        return 1.0
    return float(NUMBER_WORDS[text]) if text in NUMBER_WORDS else float(text)


def _minutes(match: re.Match[str]) -> int | None:
    groups = match.groupdict()
    if groups["hh"]:
        value = int(groups["hh"]) * 60 + int(groups["mm"])
    elif groups["h"] or groups["hw"]:
        half = 0.5 if (groups["half"] or groups["halfw"]) else 0.0
        value = round((_word_or_number(groups["h"] or groups["hw"]) + half) * 60)
    elif groups["m"] or groups["mw"]:
        value = int(_word_or_number(groups["m"] or groups["mw"]))
    else:
        text = match.group().lower()
        value = 30 if "half an hour" in text else 90
    return value if 1 <= value <= 600 else None


def _extract_runtime(scan: _Scan, found: _Found, previous: RetrievalQuery | None) -> None:
    for pattern in (_RUNTIME_BEFORE, _RUNTIME_AFTER):
        for match in scan.matches(pattern):
            scan.consume(match.start(), match.end())
            if (minutes := _minutes(match)) is not None:
                found.runtime, found.runtime_said = minutes, True
    stated = found.runtime_said  # "a short movie, under 90 minutes": the number is the cap
    for match in scan.matches(_NOT_TOO_LONG):
        scan.consume(match.start(), match.end())
        if not stated:
            found.runtime, found.runtime_said = NOT_TOO_LONG_RUNTIME, True
    for match in scan.matches(_SHORT):
        before = scan.words_before(match.start())
        if before[-1:] in (["not"], ["too"]) or before[:1] == ["not"]:
            continue
        scan.consume(match.start(), match.end())
        if not stated:
            found.runtime, found.runtime_said = SHORT_RUNTIME, True
    for match in scan.matches(_SHORTER):
        scan.consume(match.start(), match.end())
        cap = previous.max_runtime if previous is not None else None
        shorter = SHORT_RUNTIME if cap is None else max(cap - SHORTER_STEP, SHORTER_FLOOR)
        found.runtime, found.runtime_said = shorter, True
    for match in scan.matches(_LONGER):
        scan.consume(match.start(), match.end())
        found.runtime, found.runtime_said = None, True


# --------------------------------------------------------------------------- years


def _period(text: str) -> tuple[int, int] | None:
    """(first, last) year of "1990s", "'90s", "eighties", "late 70s", "2004"."""
    text = text.lower().replace("'", "")
    part = re.match(r"(early|mid|late)[\s-]+", text)
    text = text[part.end() :] if part else text
    if text in DECADE_WORDS:
        start = DECADE_WORDS[text]
    elif re.fullmatch(r"\d{4}s", text):
        start = int(text[:4])
    elif re.fullmatch(r"\d0s", text):
        tens = int(text[0])
        start = (2000 if tens <= 2 else 1900) + tens * 10
    elif re.fullmatch(r"\d{4}", text):
        return int(text), int(text)
    else:
        return None
    if part:
        offset = {"early": 0, "mid": 3, "late": 6}[part.group(1)]
        return start + offset, start + offset + 3
    return start, start + 9


@dataclass(frozen=True)
class Era:
    """What relative time words are measured against: the catalog's first and last
    release years, the release years of the page the user was just shown (a follow-up),
    and the caller's date (only "this year"/"last year" read it)."""

    first: int
    last: int
    today: date
    shown: tuple[int, ...] = ()

    def median(self) -> float | None:
        return float(statistics.median(self.shown)) if self.shown else None


def _previous_years(previous: RetrievalQuery | None) -> tuple[int | None, int | None]:
    return (previous.year_min, previous.year_max) if previous else (None, None)


def _older(previous: RetrievalQuery | None, era: Era) -> tuple[int | None, int | None]:
    """Older than what was shown: the cap goes below the shown page's median year (and
    below the previous window's start); a window with both ends shifts back by its own
    width ("90s" -> "80s"). Nothing shown and no window: older than the recent years."""
    low, high = _previous_years(previous)
    median = era.median()
    caps = [] if median is None else [math.ceil(median) - 1]
    start = None
    if low is not None and high is not None:
        start = low - (high - low + 1)
        caps.append(low - 1)
    elif low is not None:
        caps.append(low - 1)
    elif high is not None:
        caps.append(high - 10)
    if not caps:
        return None, era.last - OLD_YEARS_AGO
    cap = max(min(caps), era.first)  # nothing is older than the catalog's first year
    return (start if start is not None and start <= cap else None), cap


def _newer(previous: RetrievalQuery | None, era: Era) -> tuple[int | None, int | None]:
    """Newer than what was shown: the floor goes above the shown page's median year; a
    window with both ends shifts forward by its own width ("90s" -> "00s"). Nothing shown
    and no window: the catalog's recent years."""
    low, high = _previous_years(previous)
    median = era.median()
    if low is not None and high is not None:
        start, end = high + 1, high + (high - low + 1)
    elif median is not None:
        start, end = math.floor(median) + 1, None
    elif high is not None:
        start, end = high + 1, None
    elif low is not None:
        start, end = low + 10, None
    else:
        start, end = era.last - RECENT_WINDOW, None
    start = min(start, era.last)  # nothing is newer than the catalog's last year
    return start, (end if end is not None and end < era.last else None)


def _classic(era: Era) -> tuple[int | None, int | None]:
    """An absolute era, unless the catalog has nothing that old: then its first years."""
    if era.first > CLASSIC_YEAR_MAX:
        return None, era.first + CLASSIC_SPAN
    return None, CLASSIC_YEAR_MAX


def _bound(op: str, period: tuple[int, int]) -> tuple[int | None, int | None]:
    op = re.sub(r"\s+", " ", op.lower()).rstrip("-")
    if op in ("before", "pre", "earlier than", "prior to", "older than"):
        return None, period[0] - 1
    if op in ("until", "up to", "through"):
        return None, period[1]
    if op == "since":
        return period[0], None
    return period[1] + 1, None  # after, post, newer than, later than


def _extract_years(scan: _Scan, found: _Found, era: Era, previous: RetrievalQuery | None) -> None:
    for match in scan.matches(_YEAR_RANGE):
        first = _period(match.group("a") or match.group("c"))
        last = _period(match.group("b") or match.group("d"))
        if first and last:
            scan.consume(match.start(), match.end())
            low, high = sorted((first[0], last[1]))
            found.years.append((low, high))
    for match in scan.matches(_YEAR_BOUND):
        if period := _period(match.group("p")):
            scan.consume(match.start(), match.end())
            low, high = _bound(match.group("op"), period)
            # "nothing (from) before 1990" keeps the other side of the bound
            preceding = [w for w in scan.words_before(match.start(), 4) if w not in _BOUND_FILLER]
            if preceding and preceding[-1] in _BOUND_NEGATIONS:
                low, high = (None, low - 1) if low is not None else (high + 1, None)
            found.years.append((low, high))
    for match in scan.matches(_YEAR_PERIOD):
        if period := _period(match.group("p")):
            scan.consume(match.start(), match.end())
            found.years.append(period)
    for match in scan.matches(_THIS_YEAR):
        year = era.today.year - (match.group("which").lower() == "last")
        scan.consume(match.start(), match.end())
        found.years.append((year, year))
    relative = (
        (_CLASSIC, lambda: _classic(era)),
        (_OLDER, lambda: _older(previous, era)),
        (_NEWER, lambda: _newer(previous, era)),
        (_RECENT, lambda: (era.last - RECENT_WINDOW, None)),
    )
    for pattern, window in relative:
        for match in scan.matches(pattern):
            scan.consume(match.start(), match.end())
            found.years.append(window())


def _intersect_years(
    windows: list[tuple[int | None, int | None]],
) -> tuple[int | None, int | None]:
    """Every stated window at once ("80s horror before 1985"); windows that cannot all
    hold ("late 70s and early 80s") are read as either, so their hull is kept."""
    lows = [low for low, _ in windows if low is not None]
    highs = [high for _, high in windows if high is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    if low is not None and high is not None and low > high:
        low = None if len(lows) < len(windows) else min(lows)
        high = None if len(highs) < len(windows) else max(highs)
    return _clamp_years(low, high)


def _clamp_years(low: int | None, high: int | None) -> tuple[int | None, int | None]:
    low = None if low is None else min(max(low, YEAR_FLOOR), YEAR_CEILING)
    high = None if high is None else min(max(high, YEAR_FLOOR), YEAR_CEILING)
    if low is not None and high is not None and low > high:
        return None, None
    return low, high


# --------------------------------------------------------------------------- count, language


_COUNT_NOT_AFTER = _words("my our your his her their the these those with for of")


def _extract_count(scan: _Scan, lexicon: _Lexicon, found: _Found) -> None:
    for match in scan.matches(_NUMBER_TOKEN):
        text = match.group("n").lower()
        value = int(text) if text.isdigit() else NUMBER_WORDS[text]
        head = scan.work[: match.start()]
        start = match.start()
        if text == "dozen" and (article := re.search(r"\ba\s+$", head, re.IGNORECASE)):
            start = article.start()
        if lead := _COUNT_LEAD.search(head):
            start = lead.start()
        elif _COUNT_AFTER_VERB.search(head):
            pass
        elif set(scan.words_before(match.start(), 1)) & _COUNT_NOT_AFTER:
            continue  # "my two kids", "for 2 people"
        elif not _counts_things(scan.work[match.end() :], lexicon, adjacent=text == "one"):
            continue
        if value < 1:
            continue
        scan.consume(start, match.end())
        found.count = min(value, MAX_COUNT)
        return


def _counts_things(after: str, lexicon: _Lexicon, adjacent: bool) -> bool:
    """True when a number is followed (within 4 words of its clause) by what it counts."""
    clause = re.split(r"[,.;:!?]", after, maxsplit=1)[0]
    for word in clause.lower().split()[: 1 if adjacent else 4]:
        if word in UNIT_WORDS or word in FUNCTION_WORDS:
            return False
        if word in COUNT_NOUNS:
            return True
        if (hit := lexicon.pattern.match(word)) and lexicon.sense(hit.group()).genres:
            return True
    return False


def _extract_language(scan: _Scan, found: _Found) -> None:
    for match in scan.matches(_NO_SUBTITLES):
        scan.consume(match.start(), match.end())
        found.language = found.language or "en"
    for match in scan.matches(_LANGUAGE):
        if _LANGUAGE_NEGATED.search(scan.work[: match.start()].lower()):
            continue  # "no french", "non-english": leave it to the text
        scan.consume(match.start(), match.end())
        found.language = found.language or LANGUAGES[match.group("lang").lower()]
