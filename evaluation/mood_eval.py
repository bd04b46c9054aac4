"""Mood requests labelled through TMDB keywords, and precision@10 of a chat retriever.

Each request is written the way people ask ("a clever crew pulls off a bank job"),
and its theme is a set of TMDB keywords: an item is relevant when its keywords
include any of them. Only items with TMDB keywords are searched (and judged), so an
unlabelled film can neither help nor hurt a method. Messages avoid copying the
keyword strings where a natural phrasing exists, so lexical search is not handed
the labels; the labels are still lexical, which favours keyword matching somewhat,
and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MoodRequest:
    message: str
    keywords: frozenset[str]


def _m(message: str, *keywords: str) -> MoodRequest:
    return MoodRequest(message, frozenset(keywords))


# fmt: off
MOODS: tuple[MoodRequest, ...] = (
    _m("a clever crew pulls off a bank job", "heist", "bank robbery", "robbery", "bank"),
    _m("the undead rise and overrun the town", "zombie", "zombie apocalypse", "undead"),
    _m("bloodsuckers stalking the night", "vampire", "dracula"),
    _m("going back in time and changing history", "time travel", "time machine", "paradox"),
    _m("secret agents and espionage", "spy", "secret agent", "cia", "espionage", "mi6"),
    _m("something festive for the holidays with santa", "christmas", "santa claus"),
    _m(
        "machines that think for themselves",
        "artificial intelligence",
        "robot",
        "android",
        "cyborg",
    ),
    _m(
        "caped heroes with superpowers saving the world",
        "superhero",
        "based on comic book",
        "marvel comic",
        "dc comics",
        "super powers",
    ),
    _m("soldiers fighting the nazis in the second world war", "world war ii", "nazis", "holocaust"),
    _m(
        "detectives hunting a psychopath who kills again and again", "serial killer", "psychopath"
    ),
    _m("kung fu fighting and karate masters", "martial arts", "kung fu", "karate"),
    _m(
        "an underdog team coached to the championship",
        "sport",
        "underdog",
        "coach",
        "baseball",
        "basketball",
        "american football",
        "boxing",
    ),
    _m("teenagers growing up in high school", "high school", "coming of age", "teenager"),
    _m("breaking out of jail", "prison", "prison escape", "jail", "escape"),
    _m(
        "visitors from another planet invade earth",
        "alien",
        "alien invasion",
        "extraterrestrial",
        "ufo",
    ),
    _m("survivors after the end of the world", "post-apocalyptic", "apocalypse", "survival"),
    _m("witches casting spells", "witch", "magic", "wizard", "witchcraft", "sorcery"),
    _m("a funny love story that ends at the altar", "romantic comedy", "wedding"),
    _m(
        "the real life story of a famous musician",
        "biography",
        "musician",
        "singer",
        "based on true story",
    ),
    _m("pirates hunting for treasure on the high seas", "pirate", "treasure", "treasure hunt"),
    _m(
        "mob bosses and organized crime families", "gangster", "mafia", "mobster", "organized crime"
    ),
    _m("giant prehistoric reptiles", "dinosaur", "tyrannosaurus rex"),
    _m("friends driving across the country", "road trip", "road movie"),
    _m("lawyers fighting a case in court", "lawyer", "courtroom", "trial", "court case"),
    _m("a professional killer takes one last contract", "hitman", "assassin", "contract killer"),
    _m("spirits haunting an old house", "ghost", "haunted house", "haunting"),
    _m(
        "astronauts exploring deep space",
        "space",
        "astronaut",
        "spaceship",
        "space travel",
        "outer space",
        "space mission",
    ),
    _m("a huge creature attacks the city", "monster", "giant monster", "kaiju", "creature"),
    _m("a loyal dog and its family", "dog", "puppy"),
    _m("getting even with those who wronged him", "revenge", "vengeance"),
    _m(
        "an oppressive future society under total control", "dystopia", "totalitarian regime"
    ),
    _m("people breaking into song and dance", "musical", "dancing", "dance", "singing"),
)
# Validation requests: other themes, the same labelling. Chat's tunable weights (the lift
# of genres the LLM says a request implies) are chosen on these, never on MOODS.
VALIDATION_MOODS: tuple[MoodRequest, ...] = (
    _m("a boxer training for the fight of his life", "boxer", "boxing"),
    _m("a crew trapped in a submarine deep under the ocean", "submarine"),
    _m("a killer shark terrorizing a beach", "shark"),
    _m("a reporter digging up a scandal", "journalist", "newspaper", "investigative journalism"),
    _m("a genius breaking into computer networks", "hacker", "computer"),
    _m("a volcano or earthquake destroys everything", "disaster", "earthquake", "volcano",
       "tornado", "natural disaster"),
    _m("a deadly virus spreads and people get sick", "epidemic", "virus", "pandemic"),
    _m("a child is taken and held for ransom", "kidnapping", "hostage"),
    _m("sword fights between samurai and ninjas", "samurai", "ninja", "sword"),
    _m("wild parties at college", "college", "fraternity"),
    _m("a sheriff keeping the peace in a small town", "sheriff", "small town"),
    _m("the race for the white house", "politics", "president", "election"),
    _m("high rollers at the casino in vegas", "casino", "gambling", "las vegas"),
    _m("fast cars racing to the finish line", "car race", "race", "racing"),
    _m("a priest fights a demon possessing a girl", "exorcism", "demon", "possession",
       "demonic possession"),
    _m("dealers smuggling cocaine for a cartel", "drug dealer", "drug cartel", "drug smuggling",
       "cocaine"),
    _m("he wakes up and cannot remember who he is", "amnesia", "memory loss"),
    _m("a terrorist plants a bomb", "terrorist", "terrorism", "bomb"),
    _m("lost in the jungle", "jungle"),
    _m("a marriage falling apart", "divorce"),
)
# fmt: on

Retriever = Callable[[str, int], Sequence[int]]


def labelled_items(items: pd.DataFrame) -> pd.DataFrame:
    """Items with TMDB keywords: the searchable and judgeable set."""
    has = items["keywords"].map(lambda k: isinstance(k, list | tuple | np.ndarray) and len(k) > 0)
    return items.loc[has]


def relevant(items: pd.DataFrame, request: MoodRequest) -> set[int]:
    hits = items["keywords"].map(lambda ks: bool(request.keywords & {str(k) for k in ks}))
    return set(items.loc[hits, "item_id"].astype(int))


def precision_at(
    retrieve: Retriever,
    items: pd.DataFrame,
    k: int = 10,
    requests: Sequence[MoodRequest] = MOODS,
) -> dict[str, float]:
    """Mean precision@k over `requests` (the test set MOODS unless given)."""
    per_request = []
    for request in requests:
        truth = relevant(items, request)
        got = list(retrieve(request.message, k))[:k]
        per_request.append(sum(i in truth for i in got) / k)
    return {f"precision@{k}": float(np.mean(per_request)), "requests": len(requests)}
