"""Chat's time words and request time on the real test catalog (ml-100k ends in 1998):
"recent" is the catalog's latest years, "older"/"newer" move the page's median year, and
every request reads the chat's clock. Real data, the real clock, no pinned dates."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import numpy as np

from app.chat_fusion import pooled_candidates
from app.funnel import UserState
from catalog.clock import FixedClock
from llm.intent.query import RECENT_WINDOW
from retrieval.base import Candidate


def chat(api, **body):
    r = api.post("/v1/chat", json={"llm": False, **body})
    assert r.status_code == 200, r.text
    return r.json()


def median_year(page: dict) -> float:
    return statistics.median(i["year"] for i in page["items"])


def last_year(api_service) -> int:
    return int(api_service.catalog.items["year"].max())


def test_a_recent_comedy_is_a_full_page_from_the_catalogs_latest_years(api, api_service) -> None:
    out = chat(api, message="a recent comedy")
    newest = last_year(api_service)
    assert out["query"]["year_min"] == newest - RECENT_WINDOW
    assert len(out["items"]) == out["query"]["count"] == 10
    for item in out["items"]:
        assert "Comedy" in item["genres"] and newest - RECENT_WINDOW <= item["year"] <= newest


def test_something_older_lowers_the_pages_median_year_after_any_page(api) -> None:
    for first in ("a recent comedy", "a comedy", "a thriller", "something from the 90s"):
        page = chat(api, message=first)
        older = chat(api, message="something older", session_id=page["session_id"])
        assert older["items"], first
        assert median_year(older) < median_year(page), (first, older["query"])
        again = chat(api, message="older", session_id=page["session_id"])
        assert again["items"] and median_year(again) < median_year(older), first


def test_newer_after_older_raises_the_median_year(api) -> None:
    page = chat(api, message="a comedy")
    older = chat(api, message="something older", session_id=page["session_id"])
    newer = chat(api, message="newer", session_id=page["session_id"])
    assert newer["items"] and median_year(newer) > median_year(older)


def test_the_ranker_sees_every_funnel_source_as_the_feed_does(api_service, monkeypatch) -> None:
    funnel, chat_ = api_service.funnel, api_service.chat()
    events = api_service.catalog.events
    mine = events[events["user_id"] == 13].sort_values("timestamp")
    user = UserState(
        13,
        mine["item_id"].to_numpy(np.int64),
        history_times=mine["timestamp"].to_numpy(np.int64),
    )
    seen = {}
    rank = funnel.ranker.rank

    def spy(ctx, candidates, **kwargs):
        seen["ctx"], seen["pool"] = ctx, candidates
        return rank(ctx, candidates, **kwargs)

    monkeypatch.setattr(funnel.ranker, "rank", spy)
    at = float(mine["timestamp"].max()) + 3600.0
    monkeypatch.setattr(chat_, "clock", FixedClock(at))
    query, _ = chat_.understand("an action movie", None, use_llm=False)
    assert chat_.page(funnel, user, query, 10)
    pool = seen["pool"]
    assert set(pool.sources) == {s.name for s in funnel.merger.sources}
    for name in ("trending", "popularity"):
        assert (pool.ranks[:, pool.sources.index(name)] >= 0).any(), name
    assert seen["ctx"].timestamp == int(at)  # the request time is the chat's clock


def test_this_year_reads_the_chats_clock(api_service, monkeypatch) -> None:
    chat_ = api_service.chat()
    at = datetime(1997, 6, 1, tzinfo=UTC).timestamp()
    monkeypatch.setattr(chat_, "clock", FixedClock(at))
    query, _ = chat_.understand("a comedy from this year", None, use_llm=False)
    assert (query.year_min, query.year_max) == (1997, 1997)
    recent, _ = chat_.understand("a recent comedy", None, use_llm=False)
    assert recent.year_min == last_year(api_service) - RECENT_WINDOW  # not the clock's


def test_pooled_candidates_keep_each_sources_best_rank() -> None:
    lists = {
        "two_tower": [Candidate(5, 0.9, "two_tower"), Candidate(7, 0.8, "two_tower")],
        "trending": [Candidate(7, 3.0, "trending"), Candidate(7, 1.0, "trending")],
        "popularity": [Candidate(9, 2.0, "popularity"), Candidate(5, 1.0, "popularity")],
    }
    pool = pooled_candidates([7, 5, 11], lists)
    assert pool.sources == ("two_tower", "trending", "popularity")
    assert pool.item_ids.tolist() == [7, 5, 11]
    assert pool.ranks.tolist() == [[1, 0, -1], [0, -1, 1], [-1, -1, -1]]
    assert pool.scores[0].tolist() == [np.float32(0.8), 3.0, 0.0]
