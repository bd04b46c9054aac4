"""One-line reasons grounded in what put an item on the page, LLM-phrased when safe.

A reason is built from `Facts` the caller has checked: the history items that drove
the pick (they are the user's own), the genres, keywords and mood terms it matched,
the named title it resembles, the source that retrieved it. The template sentence
states those facts directly. The LLM may rephrase them, and its sentence is kept only
if `grounded()` accepts it: no catalog title that is not in the facts, no "you
watched/liked ..." that does not name one of the user's own items, short, one line.
Anything else falls back to the template, so an explanation never claims a viewing
that did not happen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from llm.client import Budget, LLMClient, LLMError
from llm.prompts import Prompt, PromptError
from llm.reply_check import repetition

MAX_WORDS = 30
# LLM-phrased reasons are off by default for the embedded models: on chat pages their
# sentences were generic ("The Shining is a horror movie."), about another film ("Kingpin
# is a thriller." for Murder at 1600) or degenerate ("a thriller thriller thriller ...",
# 22 times), and they cost ~0.3 s a card, most of a 5 s answer. A real model: on.
EXPLAIN_OFF_BY_DEFAULT = ("local/",)
# Words a rephrasing may add to its facts: phrasing, not claims. Any other content word
# ("tyrant", "popular", "award-winning") is a claim the facts do not support.
_PHRASING_WORDS = """
recommend recommended recommending suggest suggested pick picked picks choice enjoy enjoyed
enjoys like liked likes love loved loves fan fans watch watched watching seen film films
movie movies title titles fit fits fitting match matches matched matching similar mood
request requested asked asking taste tastes perfect great good nice also might should could
would will just next another same kind sort style feel want wanted because since brings
offers gives keeps suit suits suited more much very really sure here there which what while
with your yours
this that these those they them their from into about have been being does make makes made
something someone anything right well enough plenty lots full story stories viewer viewers
tonight evening today here's it's you'll you're you've that's
"""
PHRASING = frozenset(_PHRASING_WORDS.split())
_CONTENT_WORD = re.compile(r"[a-z][a-z'-]{3,}")
# "because you watched X", "since you liked X", "as you enjoyed X", "you've seen X"
_VIEWED = re.compile(
    r"\byou(?:'ve| have)?\s+(?:recently\s+|also\s+)?(watched|liked|loved|enjoyed|saw|seen|rated)"
    r"\s+(?P<rest>.+)",
    re.I,
)


def explain_enabled(model: str, setting: bool | None) -> bool:
    """The `llm_explain` setting, or where it is unset the default for this model."""
    if setting is not None:
        return setting
    return not model.startswith(EXPLAIN_OFF_BY_DEFAULT)


@dataclass(frozen=True)
class Facts:
    title: str
    watched: tuple[str, ...] = ()  # titles from the user's own history that drove the pick
    like_title: str | None = None  # the title the request named ("like Alien")
    genres: tuple[str, ...] = ()  # matched genres the request asked for or implied
    keywords: tuple[str, ...] = ()  # the item's keywords that match the request's words
    moods: tuple[str, ...] = ()  # mood terms of the request
    source: str | None = None  # "your taste", "your request", "what people watch next"
    standing: str | None = None  # "rated 4.2/5 by 310 viewers", "popular lately"

    def lines(self) -> list[str]:
        """The facts as the explain prompt lists them."""
        out = [f"you watched {t}" for t in self.watched]
        if self.like_title:
            out.append(f"similar to {self.like_title}, which you asked about")
        matched = [*self.genres, *self.keywords, *self.moods]
        if matched:
            out.append("matches: " + ", ".join(dict.fromkeys(m.lower() for m in matched)))
        if self.source:
            out.append(f"retrieved by: {self.source}")
        if self.standing:
            out.append(self.standing)
        return out

    def titles(self) -> set[str]:
        return {self.title, *self.watched, *([self.like_title] if self.like_title else [])}


def template(facts: Facts) -> str:
    """The deterministic reason: the strongest fact first, in plain words."""
    matched = list(
        dict.fromkeys(m.lower() for m in (*facts.genres, *facts.keywords, *facts.moods))
    )[:3]
    if facts.like_title:
        text = f"Like {facts.like_title}, which you asked about"
    elif facts.watched:
        text = f"Because you watched {facts.watched[0]}"
    elif matched:
        text = "Matches what you asked for"
    elif facts.source:
        text = f"Picked from {facts.source}"
    else:
        text = "Fits what you asked for"
    if matched and not text.startswith("Matches"):
        text += f"; matches {', '.join(matched)}"
    elif matched:
        text += f": {', '.join(matched)}"
    if facts.standing:  # what sets this pick apart from the other matches
        text += f"; {facts.standing}"
    return text


@dataclass
class TitleGuard:
    """Finds catalog titles inside generated text (to catch invented recommendations)."""

    titles: Iterable[str]
    min_chars: int = 5  # shorter titles ("Up", "It") are ordinary words
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        names = sorted(
            {t.strip() for t in self.titles if len(t.strip()) >= self.min_chars},
            key=len,
            reverse=True,
        )
        if names:
            body = "|".join(re.escape(n) for n in names)
            self._pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.I)

    def mentioned(self, text: str) -> set[str]:
        if self._pattern is None:
            return set()
        return {m.group(0).lower() for m in self._pattern.finditer(text)}


def _stemmed(words: Sequence[str]) -> list[str]:
    from Stemmer import Stemmer  # a stemmer per call: PyStemmer objects are not thread-safe

    return Stemmer("english").stemWords(list(words))


def _content_words(text: str) -> set[str]:
    return {w.removesuffix("'s").strip("'-") for w in _CONTENT_WORD.findall(text.lower())}


def unsupported_words(text: str, facts: Facts) -> set[str]:
    """Content words of `text` that neither the facts, the titles nor phrasing account for."""
    said = _content_words(" ".join([*facts.lines(), *facts.titles()]))
    known = set(_stemmed(sorted(said | PHRASING)))
    words = sorted(_content_words(text) - PHRASING)
    return {w for w, stem in zip(words, _stemmed(words), strict=True) if stem not in known}


def grounded(text: str, facts: Facts, guard: TitleGuard, history: Sequence[str]) -> bool:
    """True if `text` names only titles in the facts, claims only real viewings, and says
    nothing the facts do not (a tiny model likes to invent plots and popularity)."""
    if not text or "\n" in text.strip() or len(text.split()) > MAX_WORDS:
        return False
    if repetition(text):  # "a thriller thriller thriller ..."
        return False
    if unsupported_words(text, facts):
        return False
    allowed = {t.lower() for t in facts.titles()}
    if guard.mentioned(text) - allowed:
        return False
    own = [t.lower() for t in (*facts.watched, *history)]
    for match in _VIEWED.finditer(text):
        rest = match.group("rest").lower()
        if not any(rest.startswith(t) for t in own):
            return False
    return True


def phrase(
    client: LLMClient,
    prompt: Prompt,
    facts: Facts,
    guard: TitleGuard,
    history: Sequence[str],
    budget: Budget | None = None,
) -> str | None:
    """The LLM's sentence for these facts, or None (off, failed, over budget, ungrounded)."""
    if not client.enabled:
        return None
    params = prompt.spec.params
    try:
        out = client.complete(
            prompt.render(title=facts.title, facts=facts.lines()),
            prompt=prompt.ref,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            stop=params.stop,
            top_p=params.top_p,
            budget=budget,
        )
    except (LLMError, PromptError):
        return None
    text = out.text.strip().strip('"').strip()
    return text if grounded(text, facts, guard, history) else None
