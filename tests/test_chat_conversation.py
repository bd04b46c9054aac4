"""POST /v1/chat as a conversation (LLM off): titles said in earlier turns are taste and
never come back, a seen page is excluded, small talk is not searched, and mood requests
are not answered by title words."""

from __future__ import annotations

from app.chat_retrieval import describes
from evaluation.title_match import title_only


def chat(api, **body):
    r = api.post("/v1/chat", json={"llm": False, **body})
    assert r.status_code == 200, r.text
    return r.json()


def _ids(out) -> list[int]:
    return [i["item_id"] for i in out["items"]]


def test_mentioned_titles_are_taste_and_never_recommended_back(api, api_service) -> None:
    first = chat(api, message="I loved The Lion King (1994) and Aladdin (1992)", count=10)
    liked = first["query"]["similar_to"]
    names = [api_service.funnel.title(i) for i in liked]
    assert len(liked) == 2 and any("Lion King" in n for n in names), names
    assert first["query"]["year_min"] is None and first["query"]["year_max"] is None
    assert not set(liked) & set(_ids(first))
    sources = {s for item in first["items"] for s in item["sources"]}
    assert {"similar", "taste"} <= sources  # neighbours and the two-tower tower, anonymous
    assert any(n in item["reason"] for item in first["items"] for n in names)

    session = first["session_id"]
    second = chat(api, message="I already saw those", session_id=session, count=10)
    assert not set(_ids(second)) & (set(_ids(first)) | set(liked))
    third = chat(api, message="something funny", session_id=session, count=10)
    assert not set(_ids(third)) & (set(_ids(first)) | set(liked))
    assert set(liked) <= set(third["query"]["similar_to"])  # still the session's taste


def test_greetings_are_not_searched(api) -> None:
    out = chat(api, message="Hello! Hi there, how are you?", count=10)
    assert out["query"]["searchable"] is False
    assert out["items"] and all("request" not in i["sources"] for i in out["items"])


def test_the_seed_request_picks_no_film_for_a_title_word(api, api_service) -> None:
    message = "something light and funny for a rainy Sunday, no horror"
    out = chat(api, message=message, count=10)
    search = api_service.chat().search
    only_title = [i["title"] for i in out["items"] if title_only(search, i["item_id"], message)]
    assert len(out["items"]) == 10 and not only_title, only_title
    assert all("Horror" not in i["genres"] for i in out["items"])


def test_runtime_cap_from_an_explicit_number(api) -> None:
    out = chat(api, message="a short movie, under 90 minutes", count=5)
    assert out["query"]["max_runtime"] == 90


def test_popularity_tips_open_requests_but_not_described_ones(api_service) -> None:
    """A request with words of its own ("a clever heist") ranks by those words; one with
    none ("any comedies?") leans on what people watch now, so the popularity weight
    changes the second and never the first."""
    chat = api_service.chat()
    funnel = api_service.funnel
    described, _ = chat.understand("a clever crew pulls off a bank job", None, use_llm=False)
    open_request, _ = chat.understand("any comedies?", None, use_llm=False)
    assert describes(described) and not describes(open_request)
    kept = chat.popular_weight
    try:
        scores = {}
        for weight in (0.0, 8.0):
            chat.popular_weight = weight
            scores[weight] = [chat.request_ranking(funnel, q)[0] for q in (described, open_request)]
    finally:
        chat.popular_weight = kept
    assert scores[0.0][0] == scores[8.0][0]
    assert scores[0.0][1] != scores[8.0][1]
