"""Genre and mood words, negations, the query's text, and `parse_intent` itself.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from catalog.search import TitleIndex
from llm.intent.constraints import (
    Era,
    _extract_count,
    _extract_language,
    _extract_runtime,
    _extract_years,
    _intersect_years,
)
from llm.intent.lexicon import FUNCTION_WORDS, GENERIC_WORDS, SMALL_TALK_WORDS
from llm.intent.mentions import extract_context, extract_dated_titles
from llm.intent.patterns import (
    _ADDITIVE,
    _NEGATOR,
    _SCOPE_END_WORDS,
    NEGATION_SCOPE_WORDS,
    _Lexicon,
    _lexicon,
)
from llm.intent.query import YEAR_FLOOR, RetrievalQuery
from llm.intent.scan import _CUT, _Found, _Scan
from llm.intent.titles import _extract_titles


def _scope_end(scan: _Scan, pos: int, lexicon: _Lexicon) -> int:
    """Where a negation stops: punctuation, a clause word, or "and" + a non-lexicon word."""
    end, seen = pos, 0
    for word in re.finditer(r"[^\s,.;:!?]+|[,.;:!?]", scan.work[pos:]):
        text = word.group().lower()
        if text in ",.;:!?" or text in _SCOPE_END_WORDS or seen >= NEGATION_SCOPE_WORDS:
            break
        if text == "and":
            following = re.compile(r"\s*").match(scan.work, pos + word.end())
            if following is None or not lexicon.pattern.match(scan.work, following.end()):
                break
        end, seen = pos + word.end(), seen + 1
    return end


def _extract_negations(scan: _Scan, lexicon: _Lexicon, found: _Found) -> None:
    for negator in scan.matches(_NEGATOR):
        stop = _scope_end(scan, negator.end(), lexicon)
        last = None
        for hit in lexicon.pattern.finditer(scan.work, negator.end(), stop):
            sense = lexicon.sense(hit.group())
            found.exclude.extend(sense.refused)
            if sense.mood:
                found.refused_moods.append(sense.mood)
            last = hit.end()
        if last is not None:
            scan.consume(negator.start(), last)


def _extract_lexicon(scan: _Scan, lexicon: _Lexicon, found: _Found) -> None:
    for hit in scan.matches(lexicon.pattern):
        sense = lexicon.sense(hit.group())
        found.include.extend(sense.genres)
        if sense.mood:
            found.moods.append(sense.mood)


# --------------------------------------------------------------------------- text, assembly

_LEAD = r"(?:and|but|or|with|plus|also|so)"
_TAIL = r"(?:and|but|or|with|without|from|in|of|for|like|by|than|that|which|to|so|plus|also)"


def _clean(text: str) -> str:
    """Tidy what is left after phrases were cut out: no dangling commas or connectives.

    A "but" right after a cut contrasted with the cut phrase ("like Heat but funny"),
    which is gone, so it goes too.
    """
    text = re.sub(rf"{_CUT}+\s*but\b", " ", text, flags=re.IGNORECASE).replace(_CUT, " ")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"[,;:]\s*([.!?])", r"\1", text)
    text = re.sub(r"\b(and|or|but)\s+(?:(?:and|or|but)\s+)+", r"\1 ", text, flags=re.I)
    before = None
    while before != text:
        before = text
        text = re.sub(rf"^(?:[\s,;:.!?\-\u2013\u2014]+|{_LEAD}\b)", "", text, flags=re.I).strip()
        text = re.sub(
            rf"(?:[\s,;:\-\u2013\u2014]+|\b{_TAIL}|\b(?:a|an|the|some))$", "", text, flags=re.I
        )
        text = text.strip()
    return text


_CHATTER = GENERIC_WORDS | FUNCTION_WORDS | SMALL_TALK_WORDS


def _has_content(text: str, ignore: frozenset[str]) -> bool:
    return any(t not in ignore for t in re.findall(r"[\w'-]+", text.lower()))


def _follow_up_text(text: str, previous: RetrievalQuery, lexicon: _Lexicon, additive: bool) -> str:
    plain = GENERIC_WORDS | FUNCTION_WORDS
    if not _has_content(text, plain):
        return previous.text
    if additive and not _has_content(text, plain | lexicon.words):
        return f"{previous.text}, {text}"
    return text


def _merge_list(old: list[str], new: list[str], replace: bool) -> list[str]:
    return list(new) if replace and new else [*old, *new]


def _assemble(
    message: str,
    scan: _Scan,
    found: _Found,
    lexicon: _Lexicon,
    previous: RetrievalQuery | None,
) -> RetrievalQuery:
    said = " ".join(message.split())
    text = _clean(scan.remaining()) if any(scan.consumed) else said
    searchable = _has_content(text, _CHATTER) or bool(found.context_moods)
    if found.context_moods:  # the occasion's mood stands in for its words
        text = ", ".join([text, *found.context_moods]) if searchable and text else ""
        text = text or " ".join(found.context_moods)
    liked = [m.item_id for m in found.mentions if m.stance == "liked"]
    seen = [m.item_id for m in found.mentions if m.stance == "seen"]
    disliked = [m.item_id for m in found.mentions if m.stance == "disliked"]
    found.similar = [*liked, *found.similar]
    found.moods.extend(found.context_moods)
    refused = set(found.exclude)
    years = _intersect_years(found.years) if found.years else None
    if previous is None:
        text = text or said
        include, exclude, moods = found.include, found.exclude, found.moods
        year_min, year_max = years or (None, None)
        runtime, language = found.runtime, found.language
        similar, count = found.similar, found.count or 10
    else:
        replace = not found.additive
        include = _merge_list(previous.include_genres, found.include, replace)
        new_includes = set(found.include)
        exclude = [g for g in previous.exclude_genres if g not in new_includes] + found.exclude
        # a new genre, not refined ("any good thrillers?" after "light and funny"), is a
        # new subject: the old request's moods do not carry over to it
        new_subject = replace and bool(found.include)
        moods = (
            list(found.moods)
            if new_subject
            else _merge_list(previous.mood_terms, found.moods, replace)
        )
        year_min, year_max = years or (previous.year_min, previous.year_max)
        runtime = found.runtime if found.runtime_said else previous.max_runtime
        language = found.language or previous.language
        similar = found.similar or previous.similar_to
        count = found.count or previous.count
        if not searchable and not found.additive:  # small talk, titles: the request stands
            searchable = previous.searchable
            text = previous.text
        else:
            text = _follow_up_text(text, previous, lexicon, found.additive)
            searchable = searchable or (previous.searchable and text.startswith(previous.text))
    refused_moods = set(found.refused_moods)
    return RetrievalQuery(
        text=text,
        include_genres=[g for g in include if g not in refused],
        exclude_genres=exclude,
        year_min=year_min,
        year_max=year_max,
        max_runtime=runtime,
        language=language,
        mood_terms=[m for m in moods if m not in refused_moods],
        similar_to=similar,
        seen=seen,
        disliked=disliked,
        seen_shown=found.seen_shown,
        searchable=searchable,
        count=count,
    )


def parse_intent(
    message: str,
    genres: Sequence[str],
    titles: TitleIndex | None = None,
    previous: RetrievalQuery | None = None,
    *,
    today: date | None = None,
    catalog_years: tuple[int, int] | None = None,
    shown_years: Sequence[int] = (),
) -> RetrievalQuery:
    """Read a chat message into a query; ``previous`` makes it a follow-up to that query.

    ``genres`` is the catalog's vocabulary: only those names are ever emitted, so the
    same parser serves MovieLens, TMDB or any other genre list. Without ``titles``,
    "like <title>" is left in the text. An empty message is an error, or a no-op
    follow-up (a copy of ``previous``).

    Relative time words are measured against the catalog, not the calendar:
    ``catalog_years`` is its (first, last) release year ("recent" = its last years) and
    ``shown_years`` the release years of the page the user was just shown ("older" =
    older than that page). Without ``catalog_years`` the catalog is taken to run up to
    ``today``. ``today`` (default: the calendar's) is read by "this year"/"last year".
    """
    if not message.strip():
        if previous is None:
            raise ValueError("cannot parse an empty message")
        return previous.model_copy()
    today = today or date.today()
    first, last = catalog_years or (YEAR_FLOOR, today.year)
    era = Era(int(first), int(last), today, tuple(int(y) for y in shown_years))
    lexicon = _lexicon(tuple(genres))
    scan = _Scan(message.replace("\u2019", "'").replace("\u2018", "'"))
    found = _Found()
    if titles is not None:
        extract_dated_titles(scan, titles, found)
        _extract_titles(scan, titles, lexicon, found)
    extract_context(scan, found)
    _extract_runtime(scan, found, previous)
    _extract_years(scan, found, era, previous)
    _extract_count(scan, lexicon, found)
    _extract_language(scan, found)
    _extract_negations(scan, lexicon, found)
    found.additive = bool(_ADDITIVE.search(scan.work))
    _extract_lexicon(scan, lexicon, found)
    return _assemble(message, scan, found, lexicon, previous)
