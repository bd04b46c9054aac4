"""The LLM-free intent parser: constraints read from chat messages, and the query contract."""

from __future__ import annotations

import random
import re
from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError

import llm.intent.titles as intent_titles
from catalog.search import TitleIndex
from llm.intent import FUNCTION_WORDS, GENERIC_WORDS, LEXICON, RetrievalQuery, parse_intent

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
TODAY = date(2025, 6, 1)
TOY_STORY, ALIEN, AMELIE, HEAT, MATRIX, IN_THE_HEAT, RONIN, HEAT_AND_DUST = range(1, 9)
CROUCHING_TIGER, THE_HIDDEN, WES_CRAVEN, STRANGELOVE = range(9, 13)


@pytest.fixture(scope="module")
def titles() -> TitleIndex:
    items = pd.DataFrame(
        {
            "item_id": range(1, 13),
            "title": [
                "Toy Story (1995)",
                "Alien (1979)",
                "Amélie (2001)",
                "Heat (1995)",
                "Matrix, The (1999)",
                "In the Heat of the Night (1967)",
                "Ronin (1998)",
                "Heat and Dust (1983)",
                "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
                "Hidden, The (1987)",
                "Wes Craven's New Nightmare (1994)",
                "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1964)",
            ],
            "genres": [
                ["Animation", "Children"],
                ["Horror", "Sci-Fi"],
                ["Comedy", "Romance"],
                ["Action", "Crime"],
                ["Action", "Sci-Fi"],
                ["Drama", "Mystery"],
                ["Action", "Thriller"],
                ["Drama"],
                ["Action", "Drama"],
                ["Sci-Fi"],
                ["Horror"],
                ["Comedy", "War"],
            ],
            "popularity": [10.0, 8.0, 7.0, 6.0, 9.0, 2.0, 3.0, 1.0, 5.0, 4.0, 4.0, 5.0],
        }
    )
    return TitleIndex(items)


def parse(message: str, titles: TitleIndex | None = None, **kwargs) -> RetrievalQuery:
    return parse_intent(message, GENRES, titles, today=TODAY, **kwargs)


# --------------------------------------------------------------------------- headline requests


def test_light_and_funny_no_horror() -> None:
    q = parse("something light and funny for a rainy Sunday, no horror")
    assert q.include_genres == ["Comedy"] and q.exclude_genres == ["Horror"]
    assert {"funny", "light"} <= set(q.mood_terms)
    assert q.text == "something light and funny, cozy"  # the occasion is its mood, not words


def test_90s_thriller_like_heat_not_too_violent(titles: TitleIndex) -> None:
    q = parse("a 90s thriller like Heat but not too violent", titles)
    assert q.include_genres == ["Thriller"]
    assert (q.year_min, q.year_max) == (1990, 1999)
    assert q.similar_to == [HEAT]
    assert q.exclude_genres == ["Horror", "War"]  # the documented reading of "violent"
    assert q.text == "a thriller"


def test_french_romance_2000s_under_two_hours() -> None:
    q = parse("french romantic movies from the 2000s under 2 hours")
    assert q.language == "fr" and q.include_genres == ["Romance"]
    assert (q.year_min, q.year_max, q.max_runtime) == (2000, 2009, 120)
    assert q.text == "romantic movies"


def test_unknown_words_leave_constraints_empty() -> None:
    message = "what should I watch with my grandmother?"
    q = parse(message)
    assert q == RetrievalQuery(text=message)


# --------------------------------------------------------------------------- genres


@pytest.mark.parametrize(
    ("message", "genres"),
    [
        ("something scary and spooky", ["Horror"]),
        ("a science fiction film about robots", ["Sci-Fi"]),
        ("sci fi or scifi", ["Sci-Fi"]),
        ("a movie for the kids", ["Children"]),
        ("an animated movie for kids", ["Animation", "Children"]),
        ("a rom-com", ["Romance", "Comedy"]),
        ("a whodunit", ["Mystery"]),
        ("a heist with gangsters", ["Crime"]),
        ("a loyal dog and its family", []),  # the plot, not the audience
    ],
)
def test_genre_synonyms(message: str, genres: list[str]) -> None:
    assert parse(message).include_genres == genres


def test_word_boundaries() -> None:
    assert parse("a horrible day, cheer me up").include_genres == []
    assert parse("classical music documentaries").year_max is None


def test_only_catalog_genres_are_emitted() -> None:
    tmdb = ["Comedy", "Science Fiction", "Family", "TV Movie"]
    q = parse_intent("funny sci-fi for kids, a tv movie, no horror", tmdb)
    assert q.include_genres == ["Comedy", "Science Fiction", "Family", "TV Movie"]
    assert q.exclude_genres == []  # Horror is not in this vocabulary
    assert parse_intent("a western musical", ["Drama"]).include_genres == []


# --------------------------------------------------------------------------- negation


@pytest.mark.parametrize(
    ("message", "included", "excluded"),
    [
        ("not horror", [], ["Horror"]),
        ("nothing scary", [], ["Horror"]),
        ("anything but comedy, maybe a western", ["Western"], ["Comedy"]),
        ("scary movies except westerns", ["Horror"], ["Western"]),
        ("avoid romance, give me action", ["Action"], ["Romance"]),
        ("spooky but not gory", [], ["Horror"]),  # exclusion beats the positive word
        ("no horror or romance", [], ["Horror", "Romance"]),
        ("no horror and something funny", ["Comedy"], ["Horror"]),
        ("I'm not in the mood for horror", [], ["Horror"]),
        ("not too gory", [], ["Horror"]),
        ("a heist without violence", ["Crime"], ["Horror", "War"]),
    ],
)
def test_negations(message: str, included: list[str], excluded: list[str]) -> None:
    q = parse(message)
    assert (q.include_genres, q.exclude_genres) == (included, excluded)


def test_negated_moods_are_dropped_and_leave_the_text() -> None:
    q = parse("funny movies but nothing too dark")
    assert q.mood_terms == ["funny"] and q.text == "funny movies"


# --------------------------------------------------------------------------- years


@pytest.mark.parametrize(
    ("message", "years"),
    [
        ("90s", (1990, 1999)),
        ("1990s comedies", (1990, 1999)),
        ("eighties", (1980, 1989)),
        ("80's horror", (1980, 1989)),
        ("early 2000s", (2000, 2003)),
        ("before 2000", (None, 1999)),
        ("after 2010", (2011, None)),
        ("between 1995 and 2005", (1995, 2005)),
        ("from 1999", (1999, 1999)),
        ("in 2004", (2004, 2004)),
        ("80s horror before 1985", (1980, 1984)),
        ("a classic western", (None, 1979)),
        ("recent thrillers", (2016, None)),  # the catalog's last years, not the calendar's
        ("older movies", (None, 1998)),
        ("New York stories", (None, None)),
    ],
)
def test_years(message: str, years: tuple[int | None, int | None]) -> None:
    q = parse(message, catalog_years=(1902, 2018))
    assert (q.year_min, q.year_max) == years


# ------------------------------------------------------------------ runtime, language, count


@pytest.mark.parametrize(
    ("message", "minutes"),
    [
        ("under 90 minutes", 90),
        ("less than 2 hours", 120),
        ("an hour and a half max", 90),
        ("under 1h30", 90),
        ("something short", 100),
        ("not too long please", 120),
        ("not a short film", None),
    ],
)
def test_runtime(message: str, minutes: int | None) -> None:
    assert parse(message).max_runtime == minutes


@pytest.mark.parametrize(
    ("message", "language"),
    [
        ("in french", "fr"),
        ("a japanese thriller", "ja"),
        ("korean horror", "ko"),
        ("spanish comedies", "es"),
        ("german", "de"),
        ("italian", "it"),
        ("hindi", "hi"),
        ("english please", "en"),
        ("a foreign film", None),
        ("not in french", None),
        ("a french film with english subtitles", "fr"),
    ],
)
def test_language(message: str, language: str | None) -> None:
    assert parse(message).language == language


@pytest.mark.parametrize(
    ("message", "count"),
    [
        ("5 movies", 5),
        ("three films", 3),
        ("top 20 sci-fi", 20),
        ("recommend 3 thrillers", 3),
        ("give me 100 movies", 50),
        ("with my two kids", 10),
        ("a 2 hour movie", 10),
    ],
)
def test_count(message: str, count: int) -> None:
    assert parse(message).count == count


# --------------------------------------------------------------------------- titles


def test_similar_to_titles(titles: TitleIndex) -> None:
    q = parse("something like The Matrix, Ronin and Toy Story but funny", titles)
    assert q.similar_to == [MATRIX, RONIN, TOY_STORY]
    assert q.text == "something funny"
    assert parse("in the style of Amelie", titles).similar_to == [AMELIE]
    assert parse("similar to the matrix", titles).similar_to == [MATRIX]


def test_title_words_are_not_genre_words(titles: TitleIndex) -> None:
    q = parse("movies like Alien from the 70s", titles)
    assert q.similar_to == [ALIEN] and q.include_genres == [] and q.text == "movies"
    lower = parse("movies like alien invasions", titles)  # lowercase lexicon words: genre
    assert lower.similar_to == [] and lower.include_genres == ["Sci-Fi"]


def test_title_phrase_shrinks_to_a_whole_title(titles: TitleIndex) -> None:
    assert parse("like Heat in the 90s", titles).similar_to == [HEAT]  # not IN_THE_HEAT
    assert parse("like Heat and something funny", titles).similar_to == [HEAT]  # not "Heat and"
    assert parse("something like Heat with lots of shootouts", titles).similar_to == [HEAT]


def test_title_punctuation_and_names(titles: TitleIndex) -> None:
    tiger = parse("similar to Crouching Tiger, Hidden Dragon", titles)
    assert tiger.similar_to == [CROUCHING_TIGER]  # not also "The Hidden"
    assert parse("like Dr. Strangelove with Peter Sellers", titles).similar_to == [STRANGELOVE]
    assert parse('like "Heat", but french', titles).similar_to == [HEAT]
    assert parse("something like Amélie, light and romantic", titles).similar_to == [AMELIE]
    assert parse("in the style of Wes Anderson", titles).similar_to == []
    assert parse("in the style of wes anderson movies", titles).similar_to == []


def test_like_as_a_verb_is_no_title(titles: TitleIndex) -> None:
    assert parse("I'd like something with Ronin vibes", titles).similar_to == []
    assert parse("I like horror", titles).include_genres == ["Horror"]
    assert parse("more like that", titles).similar_to == []


# --------------------------------------------------------------------------- follow-ups


@pytest.fixture
def nineties(titles: TitleIndex) -> RetrievalQuery:
    return parse("a 90s thriller like Heat but not too violent, under 2 hours", titles)


def test_follow_up_older_shifts_the_window(nineties: RetrievalQuery) -> None:
    q = parse("something older", previous=nineties)
    assert (q.year_min, q.year_max) == (1980, 1989)
    assert q.include_genres == ["Thriller"] and q.similar_to == [HEAT]
    assert q.text == nineties.text and q.max_runtime == 120


def test_follow_up_newer_shorter_funnier(nineties: RetrievalQuery) -> None:
    newer = parse("newer", previous=nineties)
    assert (newer.year_min, newer.year_max) == (2000, 2009)
    assert parse("shorter", previous=nineties).max_runtime == 100
    funnier = parse("funnier", previous=nineties)
    assert funnier.include_genres == ["Thriller", "Comedy"] and "funny" in funnier.mood_terms


def test_follow_up_overrides_and_keeps(nineties: RetrievalQuery) -> None:
    scary = parse("actually, something scary instead", previous=nineties)
    assert scary.include_genres == ["Horror"]  # explicit new genre replaces, lifts exclusion
    assert scary.exclude_genres == ["War"]
    assert (scary.year_min, scary.year_max) == (1990, 1999)
    less = parse("less scary, in french", previous=scary)
    assert less.include_genres == [] and "Horror" in less.exclude_genres
    assert less.language == "fr" and less.mood_terms == []
    calmer = parse("less violent", previous=parse("war movies"))
    assert calmer.include_genres == [] and calmer.exclude_genres == ["Horror", "War"]
    same = parse("more like that", previous=nineties)
    assert same == nineties


# --------------------------------------------------------------------------- the query contract


def test_query_validation() -> None:
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", year_min=2005, year_max=1995)
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", year_min=1800)
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", max_runtime=0)
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", count=51)
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", language="french")
    with pytest.raises(ValidationError):
        RetrievalQuery(text="   ")
    with pytest.raises(ValidationError):
        RetrievalQuery(text="x", genre="Comedy")  # extra fields are refused
    q = RetrievalQuery(text="x", include_genres=["Horror", "Comedy"], exclude_genres=["Horror"])
    assert q.include_genres == ["Comedy"]  # exclusion wins
    assert RetrievalQuery(text="x", language="FR", mood_terms=["Dark", "dark"]).language == "fr"


def test_empty_message() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse("  ")
    previous = parse("90s comedies")
    assert parse("", previous=previous) == previous


def test_whole_message_consumed_falls_back_to_it(titles: TitleIndex) -> None:
    assert parse("like Heat", titles).text == "like Heat"
    assert parse("in 2004").text == "in 2004"


@pytest.mark.parametrize(
    ("message", "years"),
    [
        ("a heist movie, nothing from before 1990", (1990, None)),
        ("no movies before 1995", (1995, None)),
        ("a comedy not after 2000", (None, 2000)),
        ("a comedy from before 1990", (None, 1989)),
        ("films made before 1970 please", (None, 1969)),
    ],
)
def test_a_negated_year_bound_keeps_the_other_side(message: str, years) -> None:
    query = parse_intent(message, ["Comedy", "Crime"])
    assert (query.year_min, query.year_max) == years


# --------------------------------------------------------------------------- misspelt titles


def test_misspelt_titles_resolve(titles: TitleIndex) -> None:
    q = parse("something like the matrx but funnier", titles)
    assert q.similar_to == [MATRIX] and q.text == "something funnier"
    assert parse("like Ronin and Toy Stroy", titles).similar_to == [RONIN, TOY_STORY]
    assert parse("similar to Crouching Tigr, Hidden Dragon", titles).similar_to == [CROUCHING_TIGER]
    assert parse("like Dr. Strangelov", titles).similar_to == [STRANGELOVE]
    assert parse("like Amelei", titles).similar_to == []  # a swap in 6 letters: 83.3 < 85


def test_exact_titles_win_over_typos(titles: TitleIndex) -> None:
    # a spelt title is read as spelt, never corrected into a longer one
    assert parse("like Heat in the 90s", titles).similar_to == [HEAT]
    assert parse("like Heat and Dust", titles).similar_to == [HEAT_AND_DUST]
    assert parse("like Alien, Ronin and Heat", titles).similar_to == [ALIEN, RONIN, HEAT]


def test_misspelt_ties_go_to_popular_titles() -> None:
    items = pd.DataFrame(
        {
            "item_id": [1, 2],
            "title": ["Matrix, The (2030)", "Matrix, The (1999)"],
            "genres": [["Sci-Fi"], ["Sci-Fi"]],
            "popularity": [1.0, 9.0],
        }
    )
    assert parse("like the matrx", TitleIndex(items)).similar_to == [2]
    items["popularity"] = [9.0, 1.0]
    assert parse("like the matrx", TitleIndex(items)).similar_to == [1]


class _SearchOnly:
    """An index with nothing but search(), as the parser allows: no fuzzy step then."""

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        return [(7, 1.0)] if query.lower() == "ronin" else []


def test_a_search_only_index_gets_no_fuzzy_step() -> None:
    assert parse("like Ronin", _SearchOnly()).similar_to == [7]  # type: ignore[arg-type]
    assert parse("like Rnoin", _SearchOnly()).similar_to == []  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def movielens(ml_small) -> tuple[TitleIndex, dict[int, str]]:
    """The real ml-latest-small catalog (about 9.7k titles), where near misses abound."""
    items = ml_small.items
    return TitleIndex(items), dict(zip(items["item_id"], items["title"], strict=True))


def similar(message: str, movielens: tuple[TitleIndex, dict[int, str]]) -> list[str]:
    index, names = movielens
    return [names[item] for item in parse(message, index).similar_to]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("something like the matrx", ["The Matrix"]),
        ("like Terminater 2", ["Terminator 2: Judgment Day"]),
        ("similar to Amelie", ["Amelie (Fabuleux destin d'Amélie Poulain, Le)"]),
        ("like Amélie Poulian", ["Amelie (Fabuleux destin d'Amélie Poulain, Le)"]),
        ("like Leon the Profesional", ["Léon: The Professional (a.k.a. The Professional) (Léon)"]),
        ("in the style of pulp fictoin", ["Pulp Fiction"]),
        ("something like Jurasic Park but funnier", ["Jurassic Park"]),
        ("like Jurasic Prak", ["Jurassic Park"]),
        ("movies like the godfater", ["The Godfather"]),
        ("like Forest Gump", ["Forrest Gump"]),
        ("like The Lord of the Rigns", ["The Lord of the Rings"]),
        ("like Silence of the Lamb", ["The Silence of the Lambs"]),
        ("like Back to the Futur", ["Back to the Future"]),
        ("something like Inceptoin with more romance", ["Inception"]),
        ("like Ghostbusers", ["Ghostbusters"]),
        ("like Spiderman", ["Spider-Man"]),
        ("like Heat, Ronin and Colateral", ["Heat", "Ronin", "Collateral"]),
    ],
)
def test_misspelt_titles_resolve_in_the_real_catalog(
    movielens: tuple[TitleIndex, dict[int, str]], message: str, expected: list[str]
) -> None:
    assert similar(message, movielens) == expected


@pytest.mark.parametrize(
    "message",
    [
        "like horror",
        "I'd like something fun",
        "something like a fairy tale",
        "like horor movies",  # a misspelt genre word is still a genre word
        "something like a comdy",
        "like Mobster",  # a lexicon word, capitalised: not a misspelt "Monster"
        "like a rainy day",  # "rainy" is no typo of "Rain"
        "something like accident",  # nor "accident" of "Happy Accidents"
        "something like aging",  # nor of "Raging Bull"
        "something like anthology",  # two letters from "Pathology", but a word
        "something like organized crime",  # "Disorganized Crime"
        "similar to the wanting coast",  # "the" + a word cut from a longer phrase
        "like a forced movie",  # "The Kentucky Fried Movie" shares only filler
        "something like dealing harvard",  # "Stealing Harvard" is two edits away
        "in the style of Wes Anderson",
        "like Tarantino",
        "like inceptoin",  # a lone lowercase word is too weak to correct
    ],
)
def test_ordinary_phrases_are_not_titles(
    movielens: tuple[TitleIndex, dict[int, str]], message: str
) -> None:
    assert similar(message, movielens) == []


def test_genre_words_survive_the_fuzzy_step(movielens: tuple[TitleIndex, dict[int, str]]) -> None:
    index, _ = movielens
    assert parse("I like horror", index).include_genres == ["Horror"]
    assert parse("something like a fairy tale", index).include_genres == ["Fantasy"]
    assert parse("like Mobster", index).include_genres == ["Crime"]


def test_spelt_titles_read_as_without_the_fuzzy_step(
    movielens: tuple[TitleIndex, dict[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Correctly spelt titles, in the real catalog, parse exactly as they would with no
    fuzzy step at all: it is a fallback, never a second opinion."""
    index, names = movielens
    rng = random.Random(5)
    shapes = [
        "something like {}",
        "movies similar to {} but funnier",
        "in the style of {}, 90s please",
        "a thriller like {} and not too long",
        "like {} in the 90s",
        "like {} and Heat",
    ]
    by_popularity = sorted(range(len(index.item_ids)), key=lambda row: -index.popularity[row])
    messages = []
    for row in by_popularity[:400]:
        title = re.sub(r"\s*\(\d{4}\)$", "", names[int(index.item_ids[row])])
        messages.append(rng.choice(shapes).format(title if rng.random() < 0.5 else title.lower()))
    with_fuzzy = [parse(m, index) for m in messages]
    monkeypatch.setattr(intent_titles, "_resolve_fuzzy", lambda *args, **kwargs: None)
    assert [parse(m, index) for m in messages] == with_fuzzy


# --------------------------------------------------------------------------- random messages


_TYPO_ALPHABET = "abcdefghijklmnopqrstuvwxyzé'-"


def _mistype(rng: random.Random, word: str) -> str:
    if not word:
        return word
    at = rng.randrange(len(word))
    edit = rng.choice(("drop", "swap", "add", "change"))
    if edit == "drop":
        return word[:at] + word[at + 1 :]
    if edit == "swap" and at + 1 < len(word):
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    letter = rng.choice(_TYPO_ALPHABET)
    return word[:at] + letter + word[at + (edit == "change") :]


def _random_messages(rng: random.Random, index: TitleIndex, n: int) -> list[str]:
    """Messages of triggers, title words (often mistyped), lexicon and filler words and
    punctuation in any order and case: what fuzzing the title step needs to reach."""
    title_words = sorted({word for title in index.titles for word in title})
    plain = sorted(LEXICON) + sorted(GENERIC_WORDS | FUNCTION_WORDS)
    glue = ["like", "similar to", "in the style of", "such as", "à la", "I'd like", "the", "and"]
    marks = [",", ".", ";", "!", "?", "(1999)", '"', "'", "-", "(", ")", "", "\u2019", "\t"]
    messages = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(1, 14)):
            pick = rng.random()
            if pick < 0.35:
                word = rng.choice(title_words)
                word = _mistype(rng, word) if rng.random() < 0.5 else word
            elif pick < 0.6:
                word = rng.choice(glue)
            elif pick < 0.9:
                word = rng.choice(plain)
            else:
                word = "".join(rng.choice(_TYPO_ALPHABET + "0123456789 ") for _ in range(5))
            word = word.title() if rng.random() < 0.4 else word
            words.append(word + rng.choice(marks if rng.random() < 0.3 else [""]))
        messages.append(" ".join(words))
    return messages


def _assert_parses(messages: list[str], index: TitleIndex) -> None:
    known = set(index.item_ids.tolist())
    for number, message in enumerate(messages):
        if not message.strip():
            continue
        q = parse(message, index)
        assert set(q.similar_to) <= known, message
        if number % 10 == 0:  # and as a follow-up, which merges rather than replaces
            assert parse(message, index, previous=parse("like the matrx", index)).text


def test_random_messages_parse_with_the_toy_catalog(titles: TitleIndex) -> None:
    _assert_parses(_random_messages(random.Random(20), titles, 20_000), titles)


def test_random_messages_parse_with_the_real_catalog(
    movielens: tuple[TitleIndex, dict[int, str]],
) -> None:
    index, _ = movielens
    _assert_parses(_random_messages(random.Random(21), index, 2_000), index)
