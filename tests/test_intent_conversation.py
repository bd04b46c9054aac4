"""Conversation reading in the intent parser: "Name (YYYY)" titles and what was said about
them, occasion words, small talk, and the session state chat keeps from them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from app.chat_state import ConversationState, with_conversation
from app.funnel import UserState
from catalog.search import TitleIndex
from llm.intent import RetrievalQuery, parse_intent
from llm.intent_llm import Proposal, merge

GENRES = ["Animation", "Children", "Comedy", "Drama", "Horror", "Musical", "Romance"]
LION_1994, LION_2019, TANGLED, FROZEN, XMAS, FIRST_SUNDAY = range(1, 7)


@pytest.fixture(scope="module")
def titles() -> TitleIndex:
    items = pd.DataFrame(
        {
            "item_id": range(1, 7),
            "title": [
                "Lion King, The",
                "Lion King, The",
                "Tangled",
                "Frozen",
                "Happy Christmas",
                "First Sunday",
            ],
            "year": [1994, 2019, 2010, 2013, 2014, 2008],
            "popularity": [10.0, 20.0, 5.0, 8.0, 1.0, 2.0],
        }
    )
    return TitleIndex(items)


def parse(message: str, titles: TitleIndex, **kwargs) -> RetrievalQuery:
    return parse_intent(message, GENRES, titles, today=date(2025, 6, 1), **kwargs)


def test_a_title_with_its_year_is_that_film_and_never_a_year_filter(titles) -> None:
    q = parse("I like Happy Christmas (2014)", titles)
    assert q.similar_to == [XMAS]
    assert (q.year_min, q.year_max) == (None, None)
    old = parse("I loved The Lion King (1994)", titles)
    new = parse("I loved The Lion King (2019)", titles)
    assert old.similar_to == [LION_1994] and new.similar_to == [LION_2019]  # remakes apart
    assert old.year_min is None and new.year_max is None
    unknown = parse("have you seen Nothing Like It (2003)?", titles)  # not in the catalog
    assert (unknown.year_min, unknown.year_max) == (None, None) and unknown.similar_to == []


def test_an_llm_proposal_cannot_turn_a_title_year_into_a_filter(titles) -> None:
    message = "I like Happy Christmas (2014)"
    proposal = Proposal(prefer_genres=[], year_min=2014, year_max=2014)
    q = merge(parse(message, titles), proposal, message)
    assert (q.year_min, q.year_max) == (None, None)


def test_several_titles_all_become_taste_and_the_clause_sets_the_stance(titles) -> None:
    q = parse("I loved The Lion King (1994) and Tangled (2010) but hated Frozen (2013)", titles)
    assert q.similar_to == [LION_1994, TANGLED]
    assert q.disliked == [FROZEN]
    seen = parse("I have seen Tangled (2010) already", titles)
    assert seen.seen == [TANGLED] and seen.similar_to == []
    assert parse("I've seen Tangled (2010) and loved it", titles).similar_to == [TANGLED]
    assert parse("I haven't seen Frozen (2013)", titles).similar_to == [FROZEN]


def test_greetings_and_title_only_messages_are_not_searched(titles) -> None:
    for message in ("Hello! Hi there, how are you?", "hey, thanks so much", "Tangled (2010)"):
        assert not parse(message, titles).searchable, message
    assert parse("hi! a scary movie please", titles).searchable
    first = parse("a musical", titles)
    follow = parse("thanks! I loved Frozen (2013)", titles, previous=first)
    assert follow.searchable and follow.text == first.text  # the request stands


def test_occasion_words_become_moods_not_search_words(titles) -> None:
    q = parse("something light and funny for a rainy Sunday, no horror", titles)
    assert "sunday" not in q.text.lower() and "rainy" not in q.text.lower()
    assert "cozy" in q.mood_terms and q.exclude_genres == ["Horror"]
    assert q.similar_to == []  # "Sunday" is not First Sunday
    date_night = parse("a comedy for date night tonight", titles)
    assert "romantic" in date_night.mood_terms and "tonight" not in date_night.text
    assert "night" not in date_night.text


def test_an_explicit_runtime_beats_short(titles) -> None:
    assert parse("a short movie, under 90 minutes", titles).max_runtime == 90
    assert parse("something short", titles).max_runtime == 100
    assert parse("under 80 minutes, nothing too long", titles).max_runtime == 80


def test_the_session_keeps_every_title_and_a_seen_page(titles) -> None:
    state = ConversationState()
    state.add(parse("I loved The Lion King (1994) and Tangled (2010)", titles), shown=[])
    state.add(parse("I already saw those", titles), shown=[40, 41])
    assert state.liked == [LION_1994, TANGLED] and state.seen == [40, 41]
    later = parse("I hated Tangled (2010)", titles)
    state.add(later, shown=[])
    assert TANGLED in state.disliked and TANGLED not in state.taste
    again = parse("something else", titles, previous=parse("like Tangled (2010)", titles))
    state.add(again, shown=[])  # a title carried over by the parser keeps its new stance
    assert TANGLED in state.disliked
    restored = ConversationState.from_session({"titles": state.to_session()})
    assert restored.mentioned() == state.mentioned()
    user = with_conversation(UserState.anonymous(), restored, now=1_000)
    assert user.history.tolist() == restored.taste
    assert np.all(user.history_times == 1_000)
    assert restored.mentioned() <= user.disliked  # never recommended back


def test_a_new_genre_is_a_new_subject_and_drops_the_old_moods(titles) -> None:
    """ "any good horror?" after "something light and funny" asks for horror, not for
    light and funny horror; a refinement ("and funnier") keeps what came before."""
    first = parse("something light and funny, no musicals", titles)
    assert {"light", "funny"} <= set(first.mood_terms)
    switched = parse("any good horror?", titles, previous=first)
    assert switched.include_genres == ["Horror"] and switched.mood_terms == []
    assert switched.exclude_genres == ["Musical"]  # a refusal stands until lifted
    refined = parse("make it a romance too", titles, previous=first)
    assert "Romance" in refined.include_genres and {"light", "funny"} <= set(refined.mood_terms)
