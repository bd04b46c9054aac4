"""POST /v1/chat without an LLM (`"llm": false`): parsed constraints hold, sessions
refine, taste counts. The LLM path is in test_chat_llm.py."""

from __future__ import annotations


def chat(api, **body):
    r = api.post("/v1/chat", json={"llm": False, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_parsed_constraints_hold_for_every_item(api) -> None:
    out = chat(api, message="a funny movie from the 90s, no horror", count=8)
    query = out["query"]
    assert query["include_genres"] == ["Comedy"] and "Horror" in query["exclude_genres"]
    assert (query["year_min"], query["year_max"]) == (1990, 1999)
    assert len(out["items"]) == 8
    for item in out["items"]:
        assert "Comedy" in item["genres"] and "Horror" not in item["genres"]
        assert 1990 <= item["year"] <= 1999 and item["reason"]


def test_a_follow_up_refines_the_sessions_last_query(api) -> None:
    first = chat(api, message="a thriller from the 90s")
    older = chat(api, message="something older", session_id=first["session_id"])
    assert older["session_id"] == first["session_id"]
    assert older["query"]["include_genres"] == ["Thriller"]
    assert older["query"]["year_max"] < 1990
    assert all(i["year"] < 1990 and "Thriller" in i["genres"] for i in older["items"])
    fresh = chat(api, message="something older")  # no session: nothing to refine
    assert fresh["session_id"] != first["session_id"] and not fresh["query"]["include_genres"]


def test_known_users_get_their_taste_and_never_their_history(api, api_service) -> None:
    out = chat(api, message="an action movie", user_id=13, count=20)
    events = api_service.catalog.events
    seen = set(events.loc[events["user_id"] == 13, "item_id"])
    got = [i["item_id"] for i in out["items"]]
    assert got and not set(got) & seen
    assert any("taste" in i["sources"] for i in out["items"])
    anonymous = chat(api, message="an action movie", count=20)
    assert all("taste" not in i["sources"] for i in anonymous["items"])


def test_a_named_title_brings_its_neighbours_not_itself(api, api_service) -> None:
    out = chat(api, message="something like Star Wars", count=10)
    star_wars = out["query"]["similar_to"]
    assert star_wars and api_service.funnel.title(star_wars[0]).startswith("Star Wars")
    assert star_wars[0] not in [i["item_id"] for i in out["items"]]
    assert any("similar" in i["sources"] for i in out["items"])


def test_bad_chat_input_gets_a_readable_422(api) -> None:
    for body, needle in (
        ({"message": ""}, "body.message"),
        ({"message": "hi", "session_id": "../etc"}, "body.session_id"),
        ({"message": "hi", "count": 0}, "body.count"),
    ):
        r = api.post("/v1/chat", json=body)
        assert r.status_code == 422 and needle in r.json()["message"]
