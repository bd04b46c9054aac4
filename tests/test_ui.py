"""The UI's actions against the real service (ml-100k bundle, real Redis, real worker).

The Gradio layer only maps these results onto components; the browser test covers
that mapping end to end (tests/test_ui_browser.py).
"""

from __future__ import annotations

import sys

import pytest

from ui import handlers as h
from ui.app import build_ui
from ui.cards import cards_html

from . import keys
from .redis_util import wait_until


def ids(cards: list[dict]) -> list[int]:
    return [int(c["item_id"]) for c in cards]


def last(frames) -> h.ChatView:
    frames = list(frames)
    assert frames and frames[-1].done
    return frames[-1]


def history_of(api_service, user_id: int) -> set[int]:
    return set(api_service.user_state(user_id)[0].history.tolist())


def test_chat_streams_cards_that_satisfy_the_request(api_service) -> None:
    message = "an animated movie from the 90s, no horror"
    frames = list(h.chat_turn(api_service, None, message, None, [], 6))
    first, final = frames[0], frames[-1]
    assert first.history[-2] == {"role": "user", "content": message}
    assert not first.cards and not first.done
    assert any(f.cards and not f.done for f in frames), "cards arrive before the reply ends"
    assert final.done and final.session_id and len(final.cards) == 6
    for card in final.cards:
        assert "Animation" in card["genres"] and "Horror" not in card["genres"]
        assert 1990 <= card["year"] <= 1999 and card["title"] and card["reason"]
    reply = final.history[-1]
    assert reply["role"] == "assistant" and reply["content"].strip()
    assert not reply["content"].endswith("…"), "the placeholder is always replaced"
    html = cards_html(final.cards)
    assert html.count('class="mq-card"') == 6 and 'data-state="done"' in html
    assert f'data-item-id="{final.cards[0]["item_id"]}"' in html


def test_the_kids_request_from_the_brief_gets_matching_genres(api_service) -> None:
    final = last(h.chat_turn(api_service, None, "a funny animated movie for the kids", None, [], 8))
    assert len(final.cards) == 8
    wanted = {"Animation", "Children", "Comedy"}
    assert all(wanted & set(c["genres"]) for c in final.cards)
    assert sum("Animation" in c["genres"] for c in final.cards) >= 4


def test_a_follow_up_in_the_same_session_refines_the_last_query(api_service) -> None:
    first = last(h.chat_turn(api_service, 13, "a thriller from the 90s", None, [], 6))
    older = last(
        h.chat_turn(api_service, 13, "something older", first.session_id, first.history, 6)
    )
    assert older.session_id == first.session_id
    assert [m["role"] for m in older.history] == ["user", "assistant"] * 2
    assert older.cards and all(c["year"] < 1990 and "Thriller" in c["genres"] for c in older.cards)
    fresh = last(h.chat_turn(api_service, 13, "something older", None, [], 6))
    assert fresh.session_id != first.session_id


def test_chat_thumbs_are_real_events_that_reach_the_user(api, api_service) -> None:
    final = last(h.chat_turn(api_service, 31, "a musical", None, [], 5))
    liked, disliked = ids(final.cards)[:2]
    assert h.send_thumb(api_service, 31, liked, "like") == api_service.funnel.title(liked)
    h.send_thumb(api_service, 31, str(disliked), "dislike")  # the dropdown may hand back text
    assert wait_until(lambda: liked in history_of(api_service, 31), 10)
    assert wait_until(lambda: disliked in api_service.user_state(31)[0].disliked, 10)
    again = last(h.chat_turn(api_service, 31, "a musical", None, [], 5))
    assert liked not in ids(again.cards) and disliked not in ids(again.cards)


def test_a_like_from_the_feed_tab_changes_the_next_feed(api, api_service) -> None:
    before = h.feed_view(api_service, 21, 10)
    assert before.stage == "personalized" and not before.stale and len(before.cards) == 10
    liked = ids(before.cards)[0]
    assert liked not in history_of(api_service, 21)
    after = h.thumb_and_refresh(api_service, 21, liked, "like", 10)
    assert api_service.funnel.title(liked) in after.note
    assert wait_until(lambda: liked in history_of(api_service, 21), 10)
    if "already reflects" not in after.note:  # the worker was slower than the UI waits
        after = h.feed_view(api_service, 21, 10)
    assert liked not in ids(after.cards) and len(after.cards) == 10
    disliked = ids(after.cards)[0]
    again = h.thumb_and_refresh(api_service, 21, disliked, "dislike", 10)
    assert wait_until(lambda: disliked in api_service.user_state(21)[0].disliked, 10)
    if "already reflects" not in again.note:
        again = h.feed_view(api_service, 21, 10)
    assert disliked not in ids(again.cards)


def test_onboarding_creates_a_user_whose_feed_reflects_the_genres(api_service) -> None:
    user = h.onboard(api_service, ["western"], "", " 30 ", "M")
    assert user.user_id > api_service.max_catalog_user and user.liked_genres == ["Western"]
    feed = h.feed_view(api_service, user.user_id, 12)
    assert feed.stage.startswith("onboarding") and feed.known
    westerns = sum("Western" in c["genres"] for c in feed.cards)
    cold = h.feed_view(api_service, 987654000, 12)
    assert cold.stage == "popularity"
    assert westerns >= 6 and westerns > sum("Western" in c["genres"] for c in cold.cards)


def test_onboarding_resolves_free_text_titles(api_service) -> None:
    user = h.onboard(api_service, ["Animation"], "toy story\n\n aladdin ; toy story", None, "")
    assert list(user.resolved_titles) == ["toy story", "aladdin"]
    titles = [api_service.funnel.title(i) for i in user.liked_item_ids]
    assert titles[0].startswith("Toy Story") and titles[1].startswith("Aladdin")
    feed = h.feed_view(api_service, user.user_id, 10)
    assert not set(user.liked_item_ids) & set(ids(feed.cards))
    assert "titles in history" in h.describe_user(api_service, user.user_id)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"genres": [], "titles_text": "zzqqxxv unfindable"}, "No title matches “zzqqxxv"),
        ({"genres": ["Nope"], "titles_text": ""}, "Unknown genre(s): Nope"),
        ({"genres": ["Horror"], "titles_text": "", "age": 200}, "age:"),
        ({"genres": ["Horror"], "titles_text": "", "age": "20.5"}, "whole number"),
        ({"genres": ["Horror"], "titles_text": "", "age": "twenty"}, "whole number"),
        ({"genres": ["Horror"], "titles_text": "", "gender": "X"}, "gender:"),
        ({"genres": [], "titles_text": "  "}, "at least one genre"),
    ],
)
def test_bad_onboarding_input_gets_a_clear_message(api_service, kwargs, needle) -> None:
    with pytest.raises(h.UIError) as err:
        h.onboard(api_service, **kwargs)
    assert needle in str(err.value)


def test_bad_input_elsewhere_gets_a_clear_message(api_service) -> None:
    for raw, needle in (("abc", "whole number"), ("-3", "from 1 up"), ("7.5", "whole number")):
        with pytest.raises(h.UIError, match=needle):
            h.parse_user_id(raw, required=False)
    assert h.parse_user_id("  ", required=False) is None
    assert h.parse_user_id(" 42 ", required=True) == 42
    with pytest.raises(h.UIError, match="Pick a user id"):
        h.parse_user_id("", required=True)
    with pytest.raises(h.UIError, match="Type what you feel like"):
        list(h.chat_turn(api_service, None, "   ", None, []))
    with pytest.raises(h.UIError, match="under 500"):
        list(h.chat_turn(api_service, None, "x" * 501, None, []))
    with pytest.raises(h.UIError, match="pick a user id"):
        h.send_thumb(api_service, None, 1, "like")
    with pytest.raises(h.UIError, match="Unknown title"):
        h.send_thumb(api_service, 5, 10**9, "like")
    with pytest.raises(h.UIError, match="Pick one of the shown titles"):
        h.send_thumb(api_service, 5, None, "like")


def test_feeds_still_come_when_redis_stops_answering_and_say_so(api_service) -> None:
    api_service.breaker.trip()  # what a Redis timeout does: the next reads use the snapshot
    try:
        view = h.feed_view(api_service, 7, 8)
        assert view.stale and len(view.cards) == 8
        assert "Redis" in h.stale_banner(view.stale)
        assert "mq-stale" in cards_html(view.cards, banner=h.stale_banner(view.stale))
        chat = last(h.chat_turn(api_service, 7, "a comedy", None, [], 4))
        assert chat.cards and "unavailable" in chat.note
    finally:
        api_service.breaker.reset()
    assert not h.feed_view(api_service, 7, 8).stale and h.stale_banner(False) == ""


def test_without_reply_text_the_summary_says_what_was_understood(api_service) -> None:
    query = {
        "text": "x",
        "include_genres": ["Comedy", "Animation"],
        "year_min": 1990,
        "year_max": 1999,
        "exclude_genres": ["Horror"],
        "similar_to": [1],
        "mood_terms": ["funny"],
    }
    text = h.describe_query(query, 8, api_service.funnel.title)
    for needle in (
        "8 picks",
        "Comedy and Animation",
        "1990-1999",
        "no Horror",
        "Toy Story",
        "funny",
    ):
        assert needle in text, (needle, text)
    assert "nothing in the catalog fits" in h.describe_query(query, 0, api_service.funnel.title)


def test_cards_escape_what_comes_from_data() -> None:
    card = {
        "item_id": 5,
        "title": "<script>x</script>",
        "year": 1999,
        "genres": ["A&B"],
        "reason": '"quoted"',
        "sources": ["two_tower"],
    }
    html = cards_html([card])
    assert "<script>" not in html and "&lt;script&gt;" in html and "A&amp;B" in html


def test_the_ui_is_mounted_at_ui_and_survives_a_missing_prompt_lab(
    api, api_service, monkeypatch
) -> None:
    page = api.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert api.get("/ui/config").status_code == 401  # sign-in first
    assert api.post("/ui/login", data={"username": "demo", "password": "demo"}).status_code == 200
    config = api.get("/ui/config").json()
    labels = {c["props"].get("label") for c in config["components"]}
    assert {"Chat", "Feed", "Prompt lab"} <= labels
    assert "marquee_requests_total" in api.get("/metrics").text
    monkeypatch.setitem(sys.modules, "ui.prompt_lab", None)  # importing it now fails
    blocks = build_ui(lambda: api_service)
    values = [str(c["props"].get("value")) for c in blocks.get_config_file()["components"]]
    assert any("Prompt lab unavailable" in v for v in values)


def test_the_prompt_lab_fills_every_prompt_from_a_real_request(api_service) -> None:
    import json

    from ui import prompt_lab as lab

    for name in api_service.prompts.names():
        inputs = json.loads(lab.inputs_from_request(api_service, name, "7", "a space adventure"))
        api_service.prompts.get(name).render(**inputs)  # the real inputs fit the prompt
        if name == "rerank_local":
            labels = [c["label"] for c in inputs["candidates"]]
            assert len(labels) == 20 and labels[:3] == ["A", "B", "C"]
        if name == "explain":
            assert inputs["facts"] and inputs["title"]
    with pytest.raises(lab.LabError, match="number"):
        lab.inputs_from_request(api_service, "explain", "seven", "a space adventure")


def test_changing_what_production_serves_needs_an_admin_api_key(api_service) -> None:
    from ui import prompt_lab as lab

    for key in ("", "not-a-key", keys.DEV, keys.READ):  # the dev key has no admin scope
        with pytest.raises(lab.LabError, match="admin scope"):
            lab.require_editor(api_service, key)
    lab.require_editor(api_service, keys.ADMIN)
