"""50 chat replies by the embedded SmolLM2 (the product's default model), as users see them.

Real model, real service (ml-100k bundle, Redis sessions), varied requests: moods,
genres, decades, runtimes and follow-ups ("something older") replayed in one session.
Every reply a user is shown (the streamed tokens, or the template that replaced them)
must pass the reply checks, and the tokens streamed before a replacement must have been
fit to show as well. The kept share is printed (run with -s to see it).
"""

from __future__ import annotations

import re

import pytest

from app.chat import Chat, ChatLLM
from app.funnel import UserState
from llm.intent import RetrievalQuery
from llm.reply import describe
from llm.reply_check import ReplyChecker, ReplyContext

# (message, follow-ups in the same session)
DIALOGUES: list[tuple[str, tuple[str, ...]]] = [
    ("a scary movie", ("something older", "less violent")),
    ("something light and funny for a rainy Sunday, no horror", ("something older",)),
    ("a romantic comedy", ("something more recent",)),
    ("an epic space adventure", ("something older", "no action")),
    ("a tense thriller from the 90s", ("something older",)),
    ("a cartoon for the kids", ("something funnier",)),
    ("something sad that makes me cry", ("something lighter",)),
    ("a western", ("something newer",)),
    ("a classic film noir", ()),
    ("a heist movie", ("something older",)),
    ("a feel-good movie", ()),
    ("a war movie from the 70s", ("something more recent",)),
    ("a musical", ()),
    ("a mystery with a twist", ("something older",)),
    ("a documentary", ()),
    ("a fantasy adventure", ("no animation",)),
    ("a crime drama from the 80s", ()),
    ("a short movie, under 90 minutes", ()),
    ("something like Star Wars", ()),
    ("a movie like Toy Story", ("something older",)),
    ("a slasher from the 80s", ()),
    ("a quirky indie comedy", ()),
    ("a date night movie", ()),
    ("an action movie, nothing too violent", ()),
    ("a movie about friendship", ("something from the 70s",)),
    ("a courtroom drama", ()),
    ("a spy thriller", ("something older",)),
    ("a monster movie", ()),
    ("a movie about a road trip", ()),
    ("a sports movie", ()),
    ("a gangster movie", ("something more recent",)),
    ("a movie about time travel", ()),
]
N_REPLIES = 50
_DECADE = re.compile(r"\b(?:1[89]\d0|20\d0)'?s\b|\b'?\d0s\b", re.I)


def requests() -> list[list[str]]:
    """The dialogues, cut to N_REPLIES messages in all."""
    out, n = [], 0
    for first, follow in DIALOGUES:
        turns = [first, *follow][: N_REPLIES - n]
        if turns:
            out.append(turns)
            n += len(turns)
    assert n == N_REPLIES
    return out


@pytest.fixture(scope="module")
def chat(api_service) -> Chat:
    """The service's chat with the embedded model; LLM-phrased reasons off (not tested
    here), and a budget that does not cut replies on a loaded machine."""
    base = api_service.chat()
    llm = ChatLLM(api_service.llm, api_service.prompts, explain=False, budget_ms=30_000)
    return Chat(base.search, base.titles, base.sessions, llm)


def shown(events: list[dict]) -> tuple[str, str, str]:
    """(streamed tokens, the reply a user ends up seeing, its source)."""
    streamed = "".join(e["data"] for e in events if e["event"] == "token")
    final = [e["data"] for e in events if e["event"] == "reply"]
    done = events[-1]["data"]
    return streamed, (final[-1]["text"] if final else streamed), done["reply_source"]


def test_no_reply_a_user_sees_fails_the_checks(chat: Chat, api_service) -> None:
    checker = ReplyChecker(chat.guard)
    funnel, kept, seen = api_service.funnel, 0, []
    for turns in requests():
        session = None
        for message in turns:
            events = list(chat.stream(funnel, UserState.anonymous(), message, session))
            session = events[-1]["data"]["session_id"]
            query = RetrievalQuery(**next(e["data"] for e in events if e["event"] == "query"))
            cards = next(e["data"] for e in events if e["event"] == "items")
            ctx = ReplyContext.of_cards(query, message, describe(query, funnel.title), cards)
            streamed, text, source = shown(events)
            seen.append((message, source, text))
            verdict = checker.check(text, ctx)
            assert verdict.ok, (message, text, verdict)
            assert checker.check(streamed, ctx, final=False).ok, (message, streamed)
            assert not re.search(r"\b(\w+)\W+\1\W+\1\b", text, re.I), (message, text)
            if query.year_min is None and query.year_max is None:
                assert not _DECADE.search(text), (message, text)
            kept += source == "llm"
    assert len(seen) == N_REPLIES
    for message, source, text in seen[:10]:
        print(f"{source:8} {message!r} -> {text!r}")
    print(f"kept {kept}/{N_REPLIES} LLM replies ({kept / N_REPLIES:.0%}); the rest: template")
    assert kept > 0, "the embedded model's replies are never kept: the checks reject everything"
