"""Deterministic intent parsing: a chat message becomes a validated retrieval query.

This half needs no LLM, so chat keeps working when the model is off, slow or wrong;
an LLM proposal is merged in later only where it agrees with what is parsed here.
Everything is lexicon + regex over word boundaries (and edit distance for misspelt
titles): predictable, about a millisecond at most, and extended by editing the tables
below rather than the code.

Rules a reader would otherwise have to reverse-engineer:

- Phrases are consumed in a fixed order (titles, runtime, years, count, language,
  negations, then genre/mood words); a consumed phrase is blanked so later rules
  cannot re-read it. That is how "like Alien" adds Alien's id but not Sci-Fi, and
  how "less than 2 hours" is a runtime rather than a negation.
- ``text`` is the message minus the consumed constraint phrases (titles, negations,
  years, runtime, count, language). Genre and mood words stay: they are what the
  text embedding should match. Negated words go, or "no horror" would pull horror in.
- Violence: negated "gory"/"gore"/"bloody" exclude Horror; negated "violent"/
  "violence"/"brutal" exclude Horror and War, the genres that are violent by design
  (Action/Crime/Thriller stay: people who ask for "a thriller, not too violent" still
  want the thriller). Positively, "gory" means Horror; "violent" is only a mood term.
- Eras: "classic"/"vintage"/"old-school"/"golden age" -> year_max 1979; "old"/"older"
  with nothing to compare to -> year_max = this year - 20; "recent"/"latest"/"new
  movies" -> year_min = this year - 5. A bare "new" is ignored ("New York", "something
  new" meaning unseen). "from 1999"/"in 2004" mean exactly that year. Two-digit
  decades "00s".."20s" are 2000s-2020s, "30s".."90s" the 1900s; "early"/"mid"/"late"
  take 4-year slices of the decade.
- Runtime: "short"/"a quick watch" -> 100 minutes; "not too long" -> 120.
- A title is read only after a trigger ("like", "similar to", "in the style of", ...;
  not "I'd like"), from the longest phrase up to a clause boundary, shrinking from the
  right until some catalog title contains the phrase's words contiguously, as whole
  words (TitleIndex's own tokens, accents dropped: "Amelie" is "Amélie"; ranked as
  TitleIndex.search ranks), or, where no title does, misspells a run of a title's
  words. Each phrase is tried exactly, then fuzzily, before it is shrunk, so "Lord of
  the Rigns" is corrected before "Lord" finds "Lord of War". Misspelt means: each word
  that differs is one edit from its title word (a swap counts one; two edits from 10
  letters; none under 3 letters; in a phrase of three words or more, one word only),
  and the phrase, less the filler it shares with the title, scores at least
  FUZZY_THRESHOLD = 85 on rapidfuzz's fuzz.ratio ("pulp fictoin" 91.7); ties go to the
  closer spelling, then as search ranks. A word no title has may just be English, so
  a lowercase phrase needs one ("forest gump" stays words, "Forest Gump" is
  corrected), a lone word must be capitalised or follow "the" and spell a whole title
  ("the matrx", "Terminater"; not "the wanting coast"), and a word that is another
  plus letters at an edge ("rainy" for "Rain") is no typo. A lowercase phrase made
  only of lexicon words, or of misspellings of them ("like horror", "like alien",
  "like horor movies"), is read as genre/mood words instead; capitalised ("like
  Alien") it is tried as a title, exactly only. "like Heat, Ronin and Collateral" gives
  three ids; names after the first must be whole titles (or misspell one).
- Follow-ups (``previous`` given): constraints the message does not touch are kept;
  explicit new ones override. New genres/moods replace the old ones unless the message
  adds ("also", "too", "more", "funnier", ...); exclusions accumulate; a new include
  lifts an old exclusion. "older"/"newer" shift the previous year window by its own
  width; "shorter" takes 20 minutes off the previous cap (100 if there was none);
  "longer" drops the cap. A follow-up with no content words of its own ("something
  older", "more like that") keeps the previous text.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from catalog.search import TitleIndex, tokens

YEAR_FLOOR, YEAR_CEILING = 1870, 2100
CLASSIC_YEAR_MAX = 1979
OLD_YEARS_AGO = 20
RECENT_YEARS = 5
SHORT_RUNTIME = 100
NOT_TOO_LONG_RUNTIME = 120
SHORTER_STEP, SHORTER_FLOOR = 20, 30
MAX_COUNT = 50

_ISO_639_1 = re.compile(r"[a-z]{2}")


class RetrievalQuery(BaseModel):
    """What retrieval needs from a chat turn; validation is the contract with the LLM merge."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    include_genres: list[str] = Field(default_factory=list)
    exclude_genres: list[str] = Field(default_factory=list)
    # Genres the request suggests without naming them (an LLM proposal, llm/intent_llm.py):
    # they lift matching titles in the ranking but never filter.
    prefer_genres: list[str] = Field(default_factory=list)
    year_min: int | None = Field(default=None, ge=YEAR_FLOOR, le=YEAR_CEILING)
    year_max: int | None = Field(default=None, ge=YEAR_FLOOR, le=YEAR_CEILING)
    max_runtime: int | None = Field(default=None, ge=1, le=600)
    language: str | None = None
    mood_terms: list[str] = Field(default_factory=list)
    similar_to: list[int] = Field(default_factory=list)
    count: int = Field(default=10, ge=1, le=MAX_COUNT)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("text must not be blank")
        return value

    @field_validator("include_genres", "exclude_genres", "prefer_genres", "similar_to")
    @classmethod
    def _dedupe(cls, values: list[Any]) -> list[Any]:
        return list(dict.fromkeys(values))

    @field_validator("mood_terms")
    @classmethod
    def _lowercase_moods(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip().lower() for v in values if v.strip()))

    @field_validator("language")
    @classmethod
    def _iso_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _ISO_639_1.fullmatch(value):
            raise ValueError(f"language must be a two-letter ISO 639-1 code, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RetrievalQuery:
        low, high = self.year_min, self.year_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"year_min {self.year_min} > year_max {self.year_max}")
        excluded = set(self.exclude_genres)
        if excluded & set(self.include_genres):  # exclusion wins: never show what was refused
            self.include_genres = [g for g in self.include_genres if g not in excluded]
        if excluded & set(self.prefer_genres):
            self.prefer_genres = [g for g in self.prefer_genres if g not in excluded]
        return self


# --------------------------------------------------------------------------- lexicons


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


def _s(*genres: str, mood: str | None = None, negated: tuple[str, ...] | None = None) -> Sense:
    return Sense(tuple(genres), mood, negated)


# Keys are lowercase; a space or hyphen in a key matches any run of spaces/hyphens or
# none ("sci-fi" = "sci fi" = "scifi"). Genre names are MovieLens'; GENRE_ALIASES maps
# them onto other vocabularies, and a genre missing from the catalog is dropped.
# fmt: off
LEXICON: dict[str, Sense] = {
    # Comedy
    "comedy": _s("Comedy"), "comedies": _s("Comedy"), "comedic": _s("Comedy"),
    "funny": _s("Comedy", mood="funny"), "hilarious": _s("Comedy", mood="funny"),
    "humorous": _s("Comedy", mood="funny"), "laugh": _s("Comedy", mood="funny"),
    "laughs": _s("Comedy", mood="funny"), "lol": _s("Comedy", mood="funny"),
    "funnier": _s("Comedy", mood="funny"), "silly": _s("Comedy", mood="silly"),
    "goofy": _s("Comedy", mood="silly"), "slapstick": _s("Comedy", mood="silly"),
    "spoof": _s("Comedy"), "parody": _s("Comedy"), "satire": _s("Comedy", mood="satirical"),
    "satirical": _s("Comedy", mood="satirical"), "screwball": _s("Comedy"),
    "dark comedy": _s("Comedy", mood="dark"), "black comedy": _s("Comedy", mood="dark"),
    "rom-com": _s("Romance", "Comedy", mood="romantic"),
    "rom-coms": _s("Romance", "Comedy", mood="romantic"),
    "romantic comedy": _s("Romance", "Comedy", mood="romantic"),
    "romantic comedies": _s("Romance", "Comedy", mood="romantic"),
    # Horror and violence
    "horror": _s("Horror"), "scary": _s("Horror", mood="scary"),
    "scarier": _s("Horror", mood="scary"), "spooky": _s("Horror", mood="scary"),
    "creepy": _s("Horror", mood="scary"), "creepier": _s("Horror", mood="scary"),
    "terrifying": _s("Horror", mood="scary"), "frightening": _s("Horror", mood="scary"),
    "slasher": _s("Horror"), "slashers": _s("Horror"), "zombie": _s("Horror"),
    "zombies": _s("Horror"), "undead": _s("Horror"), "vampire": _s("Horror"),
    "vampires": _s("Horror"),
    "haunted": _s("Horror", mood="scary"), "ghost story": _s("Horror", mood="scary"),
    "gore": _s("Horror", mood="gory"), "gory": _s("Horror", mood="gory"),
    "bloody": _s("Horror", mood="gory"), "splatter": _s("Horror", mood="gory"),
    "violent": _s(mood="violent", negated=("Horror", "War")),
    "violence": _s(mood="violent", negated=("Horror", "War")),
    "brutal": _s(mood="violent", negated=("Horror", "War")),
    # Sci-Fi
    "sci-fi": _s("Sci-Fi"), "science fiction": _s("Sci-Fi"), "space": _s("Sci-Fi"),
    "outer space": _s("Sci-Fi"), "alien": _s("Sci-Fi"), "aliens": _s("Sci-Fi"),
    "robot": _s("Sci-Fi"), "robots": _s("Sci-Fi"), "cyberpunk": _s("Sci-Fi"),
    "futuristic": _s("Sci-Fi"), "time travel": _s("Sci-Fi", mood="time travel"),
    "dystopia": _s("Sci-Fi", mood="dystopian"), "dystopian": _s("Sci-Fi", mood="dystopian"),
    # Children and Animation
    "kids": _s("Children"), "kid": _s("Children"), "kid-friendly": _s("Children"),
    "children": _s("Children"), "children's": _s("Children"),
    # bare "family" is too often the plot ("a dog and its family"), not the audience
    "family movie": _s("Children"), "family movies": _s("Children"),
    "family film": _s("Children"), "family films": _s("Children"),
    "family night": _s("Children"), "family fun": _s("Children"),
    "family-friendly": _s("Children"), "for the family": _s("Children"),
    "for the whole family": _s("Children"), "with the family": _s("Children"),
    "family comedy": _s("Children", "Comedy"), "family drama": _s("Drama"),
    "animated": _s("Animation"), "animation": _s("Animation"), "cartoon": _s("Animation"),
    "cartoons": _s("Animation"), "anime": _s("Animation"), "stop-motion": _s("Animation"),
    "pixar": _s("Animation", "Children"), "disney": _s("Children"),
    # Romance
    "romance": _s("Romance"), "romances": _s("Romance"),
    "romantic": _s("Romance", mood="romantic"), "love story": _s("Romance", mood="romantic"),
    "love stories": _s("Romance", mood="romantic"),
    # Documentary, War, Western, Musical, Noir
    "documentary": _s("Documentary"), "documentaries": _s("Documentary"),
    "docuseries": _s("Documentary"),
    "war": _s("War"), "ww2": _s("War"), "wwii": _s("War"), "ww1": _s("War"),
    "wwi": _s("War"), "world war": _s("War"), "military": _s("War"),
    "western": _s("Western"), "westerns": _s("Western"), "cowboy": _s("Western"),
    "cowboys": _s("Western"), "wild west": _s("Western"),
    "musical": _s("Musical"), "musicals": _s("Musical"), "sing-along": _s("Musical"),
    "broadway": _s("Musical"), "song and dance": _s("Musical"),
    "noir": _s("Film-Noir"), "film noir": _s("Film-Noir"), "neo-noir": _s("Crime", "Thriller"),
    # Mystery, Thriller, Crime
    "mystery": _s("Mystery"), "mysteries": _s("Mystery"), "whodunit": _s("Mystery"),
    "whodunits": _s("Mystery"), "murder mystery": _s("Mystery", "Crime"),
    "detective": _s("Mystery", "Crime"), "detectives": _s("Mystery", "Crime"),
    "thriller": _s("Thriller"), "thrillers": _s("Thriller"),
    "thrilling": _s("Thriller", mood="thrilling"), "suspense": _s("Thriller", mood="suspenseful"),
    "suspenseful": _s("Thriller", mood="suspenseful"), "conspiracy": _s("Thriller"),
    "spy": _s("Thriller", "Action"), "spies": _s("Thriller", "Action"),
    "espionage": _s("Thriller", "Action"),
    "crime": _s("Crime"), "heist": _s("Crime"), "heists": _s("Crime"),
    "gangster": _s("Crime"), "gangsters": _s("Crime"), "mafia": _s("Crime"),
    "mob": _s("Crime"), "mobster": _s("Crime"), "mobsters": _s("Crime"),
    "serial killer": _s("Crime", "Thriller"), "serial killers": _s("Crime", "Thriller"),
    # Action, Adventure, Fantasy
    "action": _s("Action"), "action-packed": _s("Action", mood="action-packed"),
    "live action": _s(), "martial arts": _s("Action"), "kung fu": _s("Action"),
    "car chase": _s("Action"), "car chases": _s("Action"), "explosions": _s("Action"),
    "shootout": _s("Action"), "shootouts": _s("Action"),
    "superhero": _s("Action", "Adventure"), "superheroes": _s("Action", "Adventure"),
    "adventure": _s("Adventure"), "adventures": _s("Adventure"),
    "adventurous": _s("Adventure"), "quest": _s("Adventure"), "pirate": _s("Adventure"),
    "pirates": _s("Adventure"), "swashbuckling": _s("Adventure"), "treasure": _s("Adventure"),
    "fantasy": _s("Fantasy"), "magic": _s("Fantasy", mood="magical"),
    "magical": _s("Fantasy", mood="magical"), "wizard": _s("Fantasy"),
    "wizards": _s("Fantasy"), "witches": _s("Fantasy"), "dragons": _s("Fantasy"),
    "fairy tale": _s("Fantasy"), "fairy tales": _s("Fantasy"), "fairytale": _s("Fantasy"),
    "sword and sorcery": _s("Fantasy"),
    # Drama
    "drama": _s("Drama"), "dramas": _s("Drama"), "dramatic": _s("Drama"),
    "tearjerker": _s("Drama", mood="sad"), "tear-jerker": _s("Drama", mood="sad"),
    "biopic": _s("Drama", mood="biopic"), "biopics": _s("Drama", mood="biopic"),
    "period drama": _s("Drama"), "period piece": _s("Drama"), "costume drama": _s("Drama"),
    "coming of age": _s("Drama", mood="coming-of-age"),
    "imax": _s("IMAX"),
    # Moods and themes with no genre of their own
    "dark": _s(mood="dark"), "darker": _s(mood="dark"), "gritty": _s(mood="gritty"),
    "bleak": _s(mood="dark"), "light": _s(mood="light"), "lighter": _s(mood="light"),
    "lighthearted": _s(mood="light"), "light-hearted": _s(mood="light"),
    "feel-good": _s(mood="feel-good"), "uplifting": _s(mood="uplifting"),
    "hopeful": _s(mood="uplifting"), "happier": _s(mood="uplifting"),
    "happy ending": _s(mood="uplifting"), "inspiring": _s(mood="inspiring"),
    "inspirational": _s(mood="inspiring"), "heartwarming": _s(mood="heartwarming"),
    "heart-warming": _s(mood="heartwarming"), "touching": _s(mood="heartwarming"),
    "wholesome": _s(mood="wholesome"), "cozy": _s(mood="cozy"), "cosy": _s(mood="cozy"),
    "comforting": _s(mood="cozy"), "sad": _s(mood="sad"), "sadder": _s(mood="sad"),
    "heartbreaking": _s(mood="sad"), "depressing": _s(mood="depressing"),
    "bittersweet": _s(mood="bittersweet"), "melancholy": _s(mood="melancholic"),
    "melancholic": _s(mood="melancholic"), "emotional": _s(mood="emotional"),
    "moving": _s(mood="emotional"), "nostalgic": _s(mood="nostalgic"),
    "whimsical": _s(mood="whimsical"), "quirky": _s(mood="quirky"), "weird": _s(mood="weird"),
    "weirder": _s(mood="weird"), "bizarre": _s(mood="weird"), "surreal": _s(mood="surreal"),
    "mind-bending": _s(mood="mind-bending"), "mind-blowing": _s(mood="mind-bending"),
    "trippy": _s(mood="mind-bending"), "thought-provoking": _s(mood="thought-provoking"),
    "cerebral": _s(mood="thought-provoking"), "philosophical": _s(mood="thought-provoking"),
    "clever": _s(mood="clever"), "smart": _s(mood="clever"), "witty": _s(mood="witty"),
    "intense": _s(mood="intense"), "tense": _s(mood="tense"), "nail-biting": _s(mood="tense"),
    "edge of my seat": _s(mood="tense"), "edge of your seat": _s(mood="tense"),
    "exciting": _s(mood="thrilling"), "atmospheric": _s(mood="atmospheric"),
    "moody": _s(mood="atmospheric"), "relaxing": _s(mood="relaxing"),
    "chill": _s(mood="relaxing"), "slow burn": _s(mood="slow-burn"),
    "fast-paced": _s(mood="fast-paced"), "twist": _s(mood="twisty"),
    "twists": _s(mood="twisty"), "twisty": _s(mood="twisty"), "epic": _s(mood="epic"),
    "beautiful": _s(mood="beautiful"), "visually stunning": _s(mood="beautiful"),
    "charming": _s(mood="charming"), "sweet": _s(mood="sweet"), "cute": _s(mood="sweet"),
    "campy": _s(mood="campy"), "cheesy": _s(mood="campy"), "cult": _s(mood="cult"),
    "mysterious": _s(mood="mysterious"), "true story": _s(mood="true story"),
    "based on a true story": _s(mood="true story"), "date night": _s(mood="romantic"),
}
# fmt: on

# How other catalogs spell the MovieLens genres the lexicon targets.
GENRE_ALIASES: dict[str, tuple[str, ...]] = {
    "Sci-Fi": ("Sci-Fi", "Science Fiction"),
    "Children": ("Children", "Children's", "Family", "Kids"),
    "Film-Noir": ("Film-Noir", "Noir"),
    "Musical": ("Musical", "Music"),
}

# Two-letter codes as TMDB's original_language uses them ("cn" is TMDB's Cantonese).
LANGUAGES: dict[str, str] = {
    "english": "en",
    "french": "fr",
    "japanese": "ja",
    "korean": "ko",
    "spanish": "es",
    "mexican": "es",
    "german": "de",
    "italian": "it",
    "hindi": "hi",
    "bollywood": "hi",
    "chinese": "zh",
    "mandarin": "zh",
    "cantonese": "cn",
    "portuguese": "pt",
    "brazilian": "pt",
    "russian": "ru",
    "swedish": "sv",
    "danish": "da",
    "norwegian": "no",
    "finnish": "fi",
    "dutch": "nl",
    "polish": "pl",
    "turkish": "tr",
    "greek": "el",
    "persian": "fa",
    "farsi": "fa",
    "iranian": "fa",
    "arabic": "ar",
    "hebrew": "he",
    "thai": "th",
    "tamil": "ta",
    "telugu": "te",
    "czech": "cs",
    "hungarian": "hu",
    "icelandic": "is",
    "indonesian": "id",
    "vietnamese": "vi",
    "romanian": "ro",
    "ukrainian": "uk",
}

NUMBER_WORDS: dict[str, int] = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "dozen": 12,
}

DECADE_WORDS: dict[str, int] = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
    "noughties": 2000,
    "aughts": 2000,
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no request of their own: a title phrase made only of these is no
# title, and a follow-up made only of these keeps the previous text.
GENERIC_WORDS = _words(
    "something anything movie movies film films flick flicks one ones that this it those these "
    "them stuff show me give want wanna watch see recommend suggest please some good great best "
    "maybe now tonight today actually instead how about what more less similar same kind sort "
    "else again another other i i'd i'm im we you us my our any just really very also too ok okay "
    "hmm well then pick find let's lets"
)
FUNCTION_WORDS = _words(
    "a an the and or but with without from in of for to on at by as is are was be than like "
    "into onto over under about so"
)
COUNT_NOUNS = _words(
    "movie movies film films flick flicks pick picks recommendation recommendations recs "
    "suggestion suggestions option options title titles idea ideas ones choices"
)
UNIT_WORDS = _words("hour hours hr hrs minute minutes min mins year years yo year-old years-old")


# --------------------------------------------------------------------------- patterns

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


# --------------------------------------------------------------------------- scanning state


_CUT = "\x00"


class _Scan:
    """The message, with every consumed phrase blanked (same length, so offsets hold)."""

    def __init__(self, message: str) -> None:
        self.original = message
        self.work = message
        self.consumed = [False] * len(message)

    def free(self, start: int, end: int) -> bool:
        return not any(self.consumed[start:end])

    def consume(self, start: int, end: int) -> None:
        self.work = self.work[:start] + " " * (end - start) + self.work[end:]
        self.consumed[start:end] = [True] * (end - start)

    def matches(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Matches over the current text that no earlier rule has consumed meanwhile."""
        for match in list(pattern.finditer(self.work)):
            if self.free(match.start(), match.end()):
                yield match

    def remaining(self) -> str:
        """The unconsumed text, each cut marked by _CUT so cleaning can see where cuts were."""
        return "".join(
            _CUT if gone else ch for ch, gone in zip(self.original, self.consumed, strict=True)
        )

    def words_before(self, pos: int, n: int = 2) -> list[str]:
        return self.work[:pos].lower().split()[-n:]


@dataclass
class _Found:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    moods: list[str] = field(default_factory=list)
    refused_moods: list[str] = field(default_factory=list)
    years: list[tuple[int | None, int | None]] = field(default_factory=list)
    runtime: int | None = None
    runtime_said: bool = False
    language: str | None = None
    count: int | None = None
    similar: list[int] = field(default_factory=list)
    additive: bool = False


# --------------------------------------------------------------------------- titles


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


# --------------------------------------------------------------------------- runtime


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
    for match in scan.matches(_NOT_TOO_LONG):
        scan.consume(match.start(), match.end())
        found.runtime, found.runtime_said = NOT_TOO_LONG_RUNTIME, True
    for match in scan.matches(_SHORT):
        before = scan.words_before(match.start())
        if before[-1:] in (["not"], ["too"]) or before[:1] == ["not"]:
            continue
        scan.consume(match.start(), match.end())
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


def _previous_years(previous: RetrievalQuery | None) -> tuple[int | None, int | None]:
    return (previous.year_min, previous.year_max) if previous else (None, None)


def _older(previous: RetrievalQuery | None, today: date) -> tuple[int | None, int | None]:
    low, high = _previous_years(previous)
    if low is not None and high is not None:
        return low - (high - low + 1), low - 1
    if low is not None:
        return None, low - 1
    if high is not None:
        return None, high - 10
    return None, today.year - OLD_YEARS_AGO


def _newer(previous: RetrievalQuery | None, today: date) -> tuple[int | None, int | None]:
    low, high = _previous_years(previous)
    if high is not None:
        width = high - low + 1 if low is not None else None
        start = min(high + 1, today.year)
        end = high + width if width is not None else None
        return start, (end if end is not None and end < today.year else None)
    if low is not None:
        return min(low + 10, today.year), None
    return today.year - RECENT_YEARS, None


def _bound(op: str, period: tuple[int, int]) -> tuple[int | None, int | None]:
    op = re.sub(r"\s+", " ", op.lower()).rstrip("-")
    if op in ("before", "pre", "earlier than", "prior to", "older than"):
        return None, period[0] - 1
    if op in ("until", "up to", "through"):
        return None, period[1]
    if op == "since":
        return period[0], None
    return period[1] + 1, None  # after, post, newer than, later than


def _extract_years(
    scan: _Scan, found: _Found, today: date, previous: RetrievalQuery | None
) -> None:
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
        year = today.year - (match.group("which").lower() == "last")
        scan.consume(match.start(), match.end())
        found.years.append((year, year))
    relative = (
        (_CLASSIC, lambda: (None, CLASSIC_YEAR_MAX)),
        (_OLDER, lambda: _older(previous, today)),
        (_NEWER, lambda: _newer(previous, today)),
        (_RECENT, lambda: (today.year - RECENT_YEARS, None)),
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


# --------------------------------------------------------------------------- genres, moods


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
        moods = _merge_list(previous.mood_terms, found.moods, replace)
        year_min, year_max = years or (previous.year_min, previous.year_max)
        runtime = found.runtime if found.runtime_said else previous.max_runtime
        language = found.language or previous.language
        similar = found.similar or previous.similar_to
        count = found.count or previous.count
        text = _follow_up_text(text, previous, lexicon, found.additive)
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
        count=count,
    )


def parse_intent(
    message: str,
    genres: Sequence[str],
    titles: TitleIndex | None = None,
    previous: RetrievalQuery | None = None,
    *,
    today: date | None = None,
) -> RetrievalQuery:
    """Read a chat message into a query; ``previous`` makes it a follow-up to that query.

    ``genres`` is the catalog's vocabulary: only those names are ever emitted, so the
    same parser serves MovieLens, TMDB or any other genre list. Without ``titles``,
    "like <title>" is left in the text. ``today`` pins "recent"/"older" for tests.
    An empty message is an error, or a no-op follow-up (a copy of ``previous``).
    """
    if not message.strip():
        if previous is None:
            raise ValueError("cannot parse an empty message")
        return previous.model_copy()
    today = today or date.today()
    lexicon = _lexicon(tuple(genres))
    scan = _Scan(message.replace("\u2019", "'").replace("\u2018", "'"))
    found = _Found()
    if titles is not None:
        _extract_titles(scan, titles, lexicon, found)
    _extract_runtime(scan, found, previous)
    _extract_years(scan, found, today, previous)
    _extract_count(scan, lexicon, found)
    _extract_language(scan, found)
    _extract_negations(scan, lexicon, found)
    found.additive = bool(_ADDITIVE.search(scan.work))
    _extract_lexicon(scan, lexicon, found)
    return _assemble(message, scan, found, lexicon, previous)
