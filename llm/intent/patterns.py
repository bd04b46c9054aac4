"""The regular expressions of the parser, and the lexicon compiled for a catalog's genres.

Part of the intent parser; the rules are in the package docstring (llm/intent).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from catalog.search import tokens
from llm.intent.lexicon import (
    DECADE_WORDS,
    GENRE_ALIASES,
    LANGUAGES,
    LEXICON,
    NUMBER_WORDS,
    Sense,
    _words,
)

_W0, _W1 = r"(?<![\w])", r"(?![\w])"  # word edges that let hyphens separate words
_WORD_NUMBER = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))

_TITLE_TRIGGER = re.compile(
    rf"{_W0}(?:similar\s+to|in\s+the\s+(?:style|vein|spirit|mould|mold)\s+of"
    r"|along\s+the\s+lines\s+of|reminiscent\s+of|(?:the\s+)?same\s+(?:vibe|feel)\s+as"
    r"|comparable\s+to|akin\s+to|[aà]\s+la|such\s+as|(?P<like>like))\s+",
    re.IGNORECASE,
)
# "I'd like ...", "feel like ...": the verb, not the comparison.
_LIKE_VERB_BEFORE = _words(
    "i i'd id we we'd you they would do don't dont does doesn't did didn't really also might "
    "may will i'll we'll to feel feels feeling felt look looks sounds seems kinda just not "
    "should could"
)
_TITLE_STOP_WORDS = _words("but though although except unless because please thanks")
_TITLE_LIST_SEP = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s(?:and|or|&)\s+)", re.IGNORECASE)
_TITLE_YEAR = re.compile(r"\s*\(\d{4}\)")

_DURATION = (
    r"(?:(?P<hh>\d+)\s*h(?:ours?|rs?)?\s*(?:and\s+)?(?P<mm>\d{1,2})(?:\s*m(?:in(?:ute)?s?)?)?"
    r"|(?:an?\s+|one\s+)?hour\s+and\s+a\s+half|half\s+an\s+hour"
    r"|(?P<h>\d+(?:\.\d+)?)(?P<half>\s+and\s+a\s+half)?\s*(?:hours?|hrs?|h)"
    rf"|(?P<hw>{_WORD_NUMBER}|an?)(?P<halfw>\s+and\s+a\s+half)?\s+(?:hours?|hrs?)"
    rf"|(?P<m>\d+)\s*(?:minutes?|mins?|m)|(?P<mw>{_WORD_NUMBER})\s+(?:minutes?|mins?))"
)
_RUNTIME_BEFORE = re.compile(
    rf"{_W0}(?:under|below|less\s+than|shorter\s+than|at\s+most|no\s+(?:more|longer)\s+than"
    r"|not\s+(?:more|longer)\s+than|not\s+over|max(?:imum)?(?:\s+of)?|within|up\s+to"
    rf"|<\s*=?)\s*(?:about\s+|around\s+|roughly\s+)?{_DURATION}{_W1}",
    re.IGNORECASE,
)
_RUNTIME_AFTER = re.compile(
    rf"{_W0}{_DURATION}\s+(?:or\s+(?:less|shorter|under)|max(?:imum)?|tops|at\s+most){_W1}",
    re.IGNORECASE,
)
_NOT_TOO_LONG = re.compile(
    rf"{_W0}(?:not|nothing|none)\s+(?:too\s+|very\s+|overly\s+|super\s+|that\s+|so\s+)?"
    rf"(?:long|lengthy){_W1}",
    re.IGNORECASE,
)
_SHORT = re.compile(
    rf"{_W0}(?:short|(?:a\s+)?quick\s+(?:watch|one|movie|film|flick)){_W1}(?!\s+(?:of|stor))",
    re.IGNORECASE,
)
_SHORTER = re.compile(rf"{_W0}shorter{_W1}", re.IGNORECASE)
_LONGER = re.compile(rf"{_W0}longer{_W1}", re.IGNORECASE)

_YEAR = r"(?:18[7-9]\d|19\d\d|20\d\d|2100)"
_PERIOD = (
    r"(?:(?:early|mid|late)[\s-]+)?(?:(?:1[89]|20)\d0'?s|'?\d0'?s|"
    + "|".join(DECADE_WORDS)
    + rf"|{_YEAR})"
)
_YEAR_RANGE = re.compile(
    rf"{_W0}(?:(?:between|from)\s+(?:the\s+)?(?P<a>{_PERIOD})\s*(?:and|to|until|till|through"
    rf"|thru|-|\u2013)\s*(?:the\s+)?(?P<b>{_PERIOD})"
    rf"|(?P<c>{_YEAR})\s*(?:-|\u2013|to)\s*(?P<d>{_YEAR})){_W1}",
    re.IGNORECASE,
)
_YEAR_BOUND = re.compile(
    rf"{_W0}(?P<op>before|pre-?|earlier\s+than|prior\s+to|older\s+than|until|up\s+to|through"
    rf"|after|post-?|since|newer\s+than|later\s+than)\s*(?:the\s+)?(?P<p>{_PERIOD}){_W1}",
    re.IGNORECASE,
)
_BOUND_NEGATIONS = frozenset({"nothing", "no", "not", "none", "never", "nothing's"})
_BOUND_FILLER = frozenset({"from", "made", "released", "movies", "movie", "films", "film"})
_YEAR_PERIOD = re.compile(
    rf"{_W0}(?:(?:from|in|of|during|made\s+in|released\s+in|set\s+in)\s+)?(?:the\s+)?"
    rf"(?P<p>{_PERIOD})(?:\s+era)?{_W1}",
    re.IGNORECASE,
)
_CLASSIC = re.compile(
    rf"(?<!modern\s)(?<!instant\s)(?<!cult\s){_W0}(?:classics?|vintage|old[\s-]school"
    rf"|golden\s+age|black\s+and\s+white|oldies){_W1}",
    re.IGNORECASE,
)
_OLDER = re.compile(
    rf"(?<!year\s)(?<!years\s)(?<!year-){_W0}(?:older|earlier|old\s+(?:movies?|films?|ones|stuff"
    rf"|flicks?)|less\s+recent){_W1}(?!\s+(?:kids|children|brother|sister|audiences?|teens"
    r"|viewers|people|than))",
    re.IGNORECASE,
)
_NEWER = re.compile(rf"{_W0}(?:newer|more\s+recent|more\s+modern){_W1}", re.IGNORECASE)
_RECENT = re.compile(
    rf"{_W0}(?:recent|latest|newest|brand[\s-]new|new\s+(?:movies?|films?|releases?|ones|stuff)"
    rf"|(?:last|past)\s+(?:few|couple\s+of)\s+years){_W1}",
    re.IGNORECASE,
)
_THIS_YEAR = re.compile(rf"{_W0}(?P<which>this|last)\s+year(?:'s)?{_W1}", re.IGNORECASE)

_NUMBER_TOKEN = re.compile(rf"(?<![\w.])(?P<n>\d{{1,3}}|{_WORD_NUMBER})(?![\w.])", re.IGNORECASE)
_COUNT_LEAD = re.compile(r"(?:top|best)\s+$", re.IGNORECASE)
_COUNT_AFTER_VERB = re.compile(
    r"(?:recommend|suggest|give\s+me|show\s+me|list|pick|find\s+me|need|want)(?:\s+me)?\s+$",
    re.IGNORECASE,
)

_LANGUAGE = re.compile(
    rf"(?<![\w-])(?:(?:in|spoken\s+in)\s+)?(?P<lang>{'|'.join(LANGUAGES)})(?:[\s-]language)?"
    rf"{_W1}(?!\s+(?:subtitles|subs|dub|dubbed|dubbing|captions))",
    re.IGNORECASE,
)
_NO_SUBTITLES = re.compile(rf"{_W0}(?:no|without)\s+(?:subtitles|subs|reading){_W1}", re.I)
_LANGUAGE_NEGATED = re.compile(r"(?:\bno|\bnot|\bnon|\bwithout|\bexcept|\bavoid)[\s-]+(?:in\s+)?$")

_NEGATOR = re.compile(
    rf"{_W0}(?:anything\s+but|but\s+not|except(?:\s+for)?|other\s+than|apart\s+from"
    r"|aside\s+from|instead\s+of|rather\s+than|no\s+more|not|no|nothing|none|without"
    r"|avoid(?:ing)?|skip(?:ping)?|less|fewer|never|hate|dislike|not\s+into|tired\s+of"
    rf"|sick\s+of|(?:don't|dont|do\s+not)\s+(?:want|like|need)){_W1}",
    re.IGNORECASE,
)
NEGATION_SCOPE_WORDS = 6
_SCOPE_END_WORDS = _words("but though although so because just only instead rather which that")
_ADDITIVE = re.compile(
    rf"{_W0}(?:also|too|as\s+well|plus|more|in\s+addition|funnier|scarier|creepier|lighter"
    rf"|darker|happier|sadder|weirder){_W1}",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- lexicon compile


def _compact(phrase: str) -> str:
    return re.sub(r"[\s\-']+", "", phrase.lower())


def _phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p).replace("'", "'?") for p in re.split(r"[\s-]+", phrase) if p]
    return r"[\s-]*".join(parts)


def _plural(name: str) -> str:
    return name[:-1] + "ies" if name.endswith("y") else name + "s"


@dataclass(frozen=True)
class _Lexicon:
    """The lexicon narrowed to one catalog's genre vocabulary, compiled once per vocabulary."""

    pattern: re.Pattern[str]
    senses: dict[str, Sense]  # compact phrase -> sense with catalog genre names
    words: frozenset[str]  # every token of every phrase, for the title heuristic

    def sense(self, matched: str) -> Sense:
        return self.senses[_compact(matched)]


@lru_cache(maxsize=32)
def _lexicon(genres: tuple[str, ...]) -> _Lexicon:
    by_norm = {_compact(g).replace("'", ""): g for g in genres if not g.startswith("(")}

    def to_catalog(names: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for name in names:
            for alias in GENRE_ALIASES.get(name, (name,)):
                if (hit := by_norm.get(_compact(alias))) is not None:
                    out.append(hit)
                    break
        return tuple(dict.fromkeys(out))

    phrases: dict[str, Sense] = {}
    for phrase, sense in LEXICON.items():
        negated = None if sense.negated is None else to_catalog(sense.negated)
        phrases[phrase] = Sense(to_catalog(sense.genres), sense.mood, negated)
    known = {_compact(p) for p in phrases}
    for genre in by_norm.values():  # the catalog's own names always mean themselves
        name = genre.lower()
        if _compact(name) not in known:  # a genre the lexicon has not heard of: add a plural
            phrases[name] = phrases[_plural(name)] = Sense((genre,))
    alternation = "|".join(_phrase_pattern(p) for p in sorted(phrases, key=lambda p: (-len(p), p)))
    return _Lexicon(
        pattern=re.compile(rf"{_W0}(?:{alternation}){_W1}", re.IGNORECASE),
        senses={_compact(p): s for p, s in phrases.items()},
        words=frozenset(w for p in phrases for w in tokens(p)),
    )
