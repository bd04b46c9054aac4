"""The reply checks (llm/reply_check.py) on the replies seen in the UI, and the stream gate."""

from __future__ import annotations

import pytest

from llm.explain import Facts, TitleGuard, grounded
from llm.intent import RetrievalQuery
from llm.reply_check import ReplyChecker, ReplyContext, StreamGate, repetition

CATALOG = [
    "The Shining",
    "Aliens",
    "The Thing",
    "2001: A Space Odyssey",
    "Groundhog Day",
    "Clueless",
    "Funny Face",
    "His Girl Friday",
    "Jaws",
]
CHECKER = ReplyChecker(TitleGuard(CATALOG))
OLDER = RetrievalQuery(
    text="something older", include_genres=["Comedy"], exclude_genres=["Horror"], year_max=1991
)
PAGE = ["Funny Face", "His Girl Friday", "2001: A Space Odyssey", "Groundhog Day"]


def context(query: RetrievalQuery = OLDER, message: str = "something older") -> ReplyContext:
    return ReplyContext(query, message, "comedies, up to 1991, no horror", PAGE, {1957, 1940, 1968})


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("You asked for something older: " + ", ".join(["comedy"] * 30) + ".", "repetition"),
        ("Try Funny Face, a comedy, a comedy, a comedy and a comedy.", "repetition"),
        ("Try Funny Face, Funny Face, Funny Face.", "repetition"),
        ("You asked for horror from the 1980s: try Funny Face.", "genre"),
        ("You asked for comedies from the 2000s: try Funny Face.", "year"),
        ("Try Funny Face, from 1995.", "year"),
        ("Try Funny Face, under 90 minutes.", "runtime"),
        ("Try The Shining or Funny Face.", "title"),
        ("Request: something older Understood: comedies.", "scaffolding"),
        ("", "empty"),
        ("You asked", "incomplete"),
        ("You asked for comedies: try Funny Face, His Girl", "incomplete"),
        (" ".join(["word"] * 3 + [f"w{i}" for i in range(90)]) + ".", "length"),
    ],
)
def test_unfit_replies_are_rejected_with_the_check_that_failed(text: str, check: str) -> None:
    verdict = CHECKER.check(text, context())
    assert not verdict.ok and verdict.check == check, verdict


@pytest.mark.parametrize(
    "text",
    [
        "You asked for something older: comedies up to 1991, no horror. Try Funny Face.",
        "Try 2001: A Space Odyssey (1968) or His Girl Friday, both older than 1991.",
        "Groundhog Day, Funny Face and His Girl Friday lead the list of comedies.",
        "Funny Face is from the 1950s and His Girl Friday is from 1940.",
    ],
)
def test_replies_that_say_only_what_the_query_holds_pass(text: str) -> None:
    assert CHECKER.check(text, context()).ok, CHECKER.check(text, context())


def test_the_persons_own_words_and_the_querys_bounds_are_allowed() -> None:
    eighties = RetrievalQuery(
        text="a scary movie", prefer_genres=["Horror"], year_min=1980, year_max=1989
    )
    ctx = ReplyContext(eighties, "a scary movie from the 80s", "horror from the 1980s", PAGE)
    assert CHECKER.check("You asked for horror from the 80s: try Funny Face.", ctx).ok
    short = RetrievalQuery(text="a short movie", max_runtime=90)
    ctx = ReplyContext(short, "a short movie, under 90 minutes", "films, under 90 minutes", PAGE)
    assert CHECKER.check("Funny Face runs under 90 minutes.", ctx).ok
    assert not CHECKER.check("Funny Face runs under 2 hours.", ctx).ok


def test_a_title_the_person_named_may_be_repeated_back() -> None:
    like = RetrievalQuery(text="something like", similar_to=[1])
    ctx = ReplyContext(like, "something like The Shining", "films, like The Shining", PAGE)
    assert CHECKER.check("Like The Shining: try Funny Face.", ctx).ok
    assert not CHECKER.check("Like The Shining: try The Thing.", ctx).ok


def test_repetition_thresholds() -> None:
    assert repetition("very, very good") is None
    assert repetition("good good good") is not None
    assert repetition("is a thriller and is a thriller and is a thriller") is not None
    assert repetition("the cat, the dog, the bird and the fish") is None  # function words


def stream(text_pieces: list[str], ctx: ReplyContext) -> tuple[str, StreamGate]:
    gate = StreamGate(CHECKER, ctx)
    shown = "".join(gate.feed(p) for p in text_pieces)
    return shown + gate.finish(), gate


def test_the_gate_shows_a_passing_reply_whole_and_waits_for_titles_to_complete() -> None:
    pieces = ["Try", " 2001", ":", " A", " Space", " Odyssey", " or", " Funny", " Face", "."]
    gate = StreamGate(CHECKER, context())
    shown = [gate.feed(p) for p in pieces[:5]]
    assert "2001" not in "".join(shown), "a year that starts a page title waits for the title"
    text, gate = stream(pieces, context())
    assert gate.verdict.ok and text == "Try 2001: A Space Odyssey or Funny Face."


def test_the_gate_cuts_a_degenerate_reply_before_it_repeats() -> None:
    pieces = ["You asked for something older:"] + [" comedy,"] * 30
    text, gate = stream(pieces, context())
    assert not gate.verdict.ok and gate.verdict.check == "repetition"
    assert text.count("comedy") <= 2 and repetition(text) is None
    assert CHECKER.check(text, context(), final=False).ok, "what was shown passes"


def test_explanations_with_repetition_are_not_grounded() -> None:
    facts = Facts("Funny Face", genres=("Comedy",))
    guard = TitleGuard(CATALOG)
    assert grounded("Funny Face is a comedy.", facts, guard, [])
    assert not grounded("Funny Face is a comedy comedy comedy comedy.", facts, guard, [])
