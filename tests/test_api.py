"""The feed API end to end: real bundle, real Redis, real worker thread; no mocks."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from app.experiments import DEFAULT_EXPERIMENTS, HOLDOUT

from .keys import ADMIN, headers
from .redis_util import wait_until

VARIANTS = {HOLDOUT, *(v.name for v in DEFAULT_EXPERIMENTS.variants)}


def history_of(api_service, user_id: int) -> set[int]:
    events = api_service.catalog.events
    return set(events.loc[events["user_id"] == user_id, "item_id"].tolist())


def ids(response) -> list[int]:
    return [item["item_id"] for item in response.json()["items"]]


def eid() -> str:
    return uuid.uuid4().hex


def test_known_user_gets_a_personalized_explained_feed(api, api_service) -> None:
    r = api.get("/v1/users/7/feed", params={"k": 15, "explain": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stage"] == "personalized" and not body["stale"]
    assert body["variant"] in VARIANTS and body["bundle"] == api_service.funnel.version
    got = ids(r)
    assert len(got) == 15 == len(set(got))
    assert not set(got) & history_of(api_service, 7)
    for item in body["items"]:
        assert item["reason"] and item["sources"] and item["title"]
        assert 0.0 <= item["explain"]["objectives"]["click"] <= 1.0
    assert {"retrieval", "ranking", "rules"} <= set(body["timings_ms"])
    assert api.get("/v1/users/7/feed").json()["items"][0]["explain"] is None


def test_unknown_user_gets_a_cold_start_feed_not_a_404(api) -> None:
    r = api.get("/v1/users/987654321/feed", params={"k": 10})
    assert r.status_code == 200
    assert r.json()["stage"] == "popularity" and len(ids(r)) == 10


def test_onboarding_seeds_the_cold_start_feed(api, api_service) -> None:
    body = {
        "demographics": {"age": 25, "gender": "F", "occupation": "student"},
        "liked_genres": ["animation"],
        "liked_titles": ["toy story"],
    }
    r = api.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    user = r.json()
    toy_story = user["resolved_titles"]["toy story"]
    assert api_service.funnel.summaries[toy_story]["title"].startswith("Toy Story")
    assert user["user_id"] > api_service.max_catalog_user and user["liked_genres"] == ["Animation"]
    feed = api.get(f"/v1/users/{user['user_id']}/feed", params={"k": 10, "explain": True})
    assert feed.json()["stage"] == "onboarding+cohort"
    assert toy_story not in ids(feed)
    cold = api.get("/v1/users/987654322/feed", params={"k": 10})
    assert ids(feed) != ids(cold)


def test_filters_and_exclusions_are_honoured(api, api_service) -> None:
    first = ids(api.get("/v1/users/12/feed", params={"k": 10}))
    r = api.get("/v1/users/12/feed", params={"k": 10, "exclude": first[:3], "genres": "Comedy"})
    assert r.status_code == 200
    assert not set(ids(r)) & set(first[:3])
    assert all("Comedy" in item["genres"] for item in r.json()["items"])
    r = api.get("/v1/users/12/feed", params={"exclude_genres": ["Drama", "comedy"]})
    assert all(not {"Drama", "Comedy"} & set(i["genres"]) for i in r.json()["items"])


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/v1/users/7/feed", {"k": 0}, "query.k"),
        ("/v1/users/7/feed", {"k": 500}, "less than or equal to 100"),
        ("/v1/users/7/feed", {"genres": "Telenovela"}, "unknown genre"),
        ("/v1/users/0/feed", {}, "path.user_id"),
        ("/v1/users/abc/feed", {}, "path.user_id"),
        ("/v1/users/7/feed", {"maturity": "teen"}, "query.maturity"),
        ("/v1/search", {}, "query.q"),
    ],
)
def test_invalid_queries_get_a_readable_422(api, path, params, needle) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid request" and needle in r.json()["message"]


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ({"type": "rating", "user_id": 1, "item_id": 1}, "needs `rating`"),
        ({"type": "purchase", "user_id": 1, "item_id": 1}, "events.1.type"),
        ({"type": "like", "user_id": 1, "item_id": 99_999_999}, "unknown item"),
        ({"type": "like", "user_id": -3, "item_id": 1}, "user_id"),
        ({"type": "like", "user_id": 1, "item_id": 1, "extra": 1}, "extra"),
    ],
)
def test_invalid_events_get_a_readable_422_and_nothing_is_stored(
    api, api_service, event, needle
) -> None:
    before = sum(1 for _ in api_service.events.read_all())
    good = {"event_id": eid(), "type": "click", "user_id": 1, "item_id": 1}
    r = api.post("/v1/events", json={"events": [good, {"event_id": eid(), **event}]})
    assert r.status_code == 422 and needle in r.json()["message"], r.text
    assert sum(1 for _ in api_service.events.read_all()) == before  # all or nothing


def test_api_keys_are_required_on_v1_but_not_on_probes(api) -> None:
    assert api.get("/v1/users/7/feed", headers={"X-API-Key": ""}).status_code == 401
    r = api.get("/v1/users/7/feed", headers={"X-API-Key": "wrong"})
    assert r.status_code == 401 and r.json()["message"] == "invalid API key"
    for probe in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert api.get(probe, headers={"X-API-Key": ""}).status_code == 200


def test_items_similar_and_search(api) -> None:
    item = api.get("/v1/items/50")
    assert item.status_code == 200 and item.json()["title"].startswith("Star Wars")
    assert api.get("/v1/items/99999999").status_code == 404
    similar = api.get("/v1/items/50/similar", params={"k": 8}).json()
    assert len(similar) == 8 and 50 not in [s["item_id"] for s in similar]
    hits = api.get("/v1/search", params={"q": "star wars"}).json()
    assert hits and all("Star Wars" in h["title"] for h in hits[:1])
    assert api.get("/v1/search", params={"q": "zzzzqqq"}).json() == []


def test_events_are_idempotent_and_stamped_with_the_variant(api, api_service) -> None:
    events = [
        {"event_id": eid(), "type": t, "user_id": 21, "item_id": 1, "position": 0}
        for t in ("impression", "click")
    ]
    r = api.post("/v1/events", json={"events": events})
    assert r.status_code == 202 and r.json()["accepted"] == 2
    again = api.post("/v1/events", json={"events": events})
    assert again.json()["duplicates"] == 2 and again.json()["accepted"] == 0
    stored = [e for e in api_service.events.read_all() if e.event_id == events[0]["event_id"]]
    assert len(stored) == 1
    assert stored[0].variant == api_service.assigner.assign(21).name


def test_a_like_changes_the_next_feed_within_two_seconds(api, api_service) -> None:
    user = 33
    before = ids(api.get(f"/v1/users/{user}/feed", params={"k": 20}))
    # like a film that is on neither the page nor the history: the change must come from
    # the user's taste moving, not only from filtering the liked item out
    seen = history_of(api_service, user) | set(before)
    liked = next(i for i in (1, 50, 100, 181, 258, 286, 294, 300) if i not in seen)
    start = time.monotonic()
    r = api.post(
        "/v1/events",
        json={"events": [{"event_id": eid(), "type": "like", "user_id": user, "item_id": liked}]},
    )
    assert r.status_code == 202
    after = before
    while after == before and time.monotonic() - start < 2.0:
        time.sleep(0.05)
        after = ids(api.get(f"/v1/users/{user}/feed", params={"k": 20}))
    elapsed = time.monotonic() - start
    assert after != before, "feed did not change within 2 s of the like"
    assert elapsed < 2.0 and liked not in after
    state, _ = api_service.user_state(user)
    assert int(state.history[-1]) == liked  # it is now the most recent taste signal


def test_metrics_expose_stage_latency_requests_and_freshness(api) -> None:
    api.get("/v1/users/7/feed")
    text = api.get("/metrics").text
    assert 'marquee_stage_seconds_bucket{le="0.005",stage="ranking"}' in text
    assert 'marquee_requests_total{route="/v1/users/{user_id}/feed",status="200"}' in text
    assert 'marquee_feature_freshness_seconds{group="user_long"}' in text
    assert "marquee_bundle_info{version=" in text


def test_unreachable_redis_degrades_to_a_stale_feed_and_refuses_events(api_service) -> None:
    from fastapi.testclient import TestClient

    from app.service import Service, redis_client
    from ui.server import create_app

    dead = Service(
        api_service.settings,
        api_service.catalog,
        api_service.funnel,
        client=redis_client("redis://127.0.0.1:1/0"),
    )
    with TestClient(create_app(dead), headers={"X-API-Key": "marquee-dev"}) as client:
        r = client.get("/v1/users/7/feed", params={"k": 10})
        assert r.status_code == 200 and r.json()["stale"] is True
        assert not set(ids(r)) & history_of(api_service, 7)  # the snapshot still knows them
        r = client.post(
            "/v1/events",
            json={"events": [{"event_id": eid(), "type": "like", "user_id": 7, "item_id": 1}]},
        )
        assert r.status_code == 503 and "nothing was stored" in r.json()["message"]
        ready = client.get("/readyz").json()
        assert ready["ready"] and ready["degraded"] and ready["checks"]["redis"] is False
        assert "marquee_stale_responses_total 1.0" in client.get("/metrics").text


def test_bundle_hot_swap_drops_no_requests(api, api_service, serving_settings) -> None:
    import shutil
    import threading

    from retrieval.pipeline import bundles_root

    old = api_service.funnel.version
    root = bundles_root(serving_settings, "ml-100k")
    new = f"{old}-swap"
    shutil.copytree(root / old, root / new)
    (root / "LATEST").write_text(new)
    statuses: list[int] = []
    bundles: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            r = api.get("/v1/users/7/feed", params={"k": 5})
            statuses.append(r.status_code)
            bundles.append(r.json().get("bundle", ""))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        r = api.post("/v1/admin/reload", headers=headers(ADMIN))
        assert r.json() == {"switched": True, "bundle": new}
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}
    assert bundles[-1] == new and old in bundles
    try:
        assert api.post("/v1/admin/reload", headers=headers(ADMIN)).json()["switched"] is False
        assert f'marquee_bundle_info{{version="{new}"}} 1.0' in api.get("/metrics").text
    finally:  # other tests (e.g. `marquee index`) work on the original latest bundle
        (root / "LATEST").write_text(old)
        api_service.reload(root / old)
        shutil.rmtree(root / new)
    assert api_service.funnel.version == old


def test_stored_candidate_lists_give_the_same_feed_as_computing_them_live(api_service) -> None:
    from app.funnel import FeedQuery
    from features import candidate_lists

    funnel, now = api_service.funnel, 890_000_000
    state, _ = api_service.user_state(41)
    variant = api_service.variant(41)
    live = funnel.feed(state, FeedQuery(k=20), variant, now=now)
    lists = funnel.history_lists(state, now=now)
    signature = funnel.signature(state)
    stored = candidate_lists.decode(candidate_lists.encode(signature, lists), signature)
    reused = funnel.feed(state, FeedQuery(k=20), variant, now=now, precomputed=stored)
    assert [i.item_id for i in reused.items] == [i.item_id for i in live.items]
    assert live.fresh_lists is not None and reused.fresh_lists is None
    other = funnel.signature(replace(state, disliked=frozenset({1})))
    assert candidate_lists.decode(candidate_lists.encode(signature, lists), other) is None


def test_feeds_reuse_lists_until_the_history_changes(api, api_service) -> None:
    def outcomes() -> dict[str, float]:
        text = api.get("/metrics").text
        return {
            k: float(line.rsplit(" ", 1)[1])
            for k in ("stored", "live")
            for line in text.splitlines()
            if line.startswith(f'marquee_candidate_lists_total{{outcome="{k}"}}')
        }

    user = 57
    api.get(f"/v1/users/{user}/feed")  # computes (or reuses start-up lists) and stores
    before = outcomes()
    api.get(f"/v1/users/{user}/feed")
    after = outcomes()
    assert after.get("stored", 0) == before.get("stored", 0) + 1
    api.post(
        "/v1/events",
        json={"events": [{"event_id": eid(), "type": "watch", "user_id": user, "item_id": 1}]},
    )
    assert wait_until(lambda: api_service.user_state(user)[0].history[-1] == 1, 5)
    api.get(f"/v1/users/{user}/feed")
    assert outcomes().get("live", 0) == after.get("live", 0) + 1


def test_error_answers_are_documented_with_the_body_they_have(api) -> None:
    from app.schemas import ErrorResponse

    spec = api.get("/openapi.json").json()
    answers = spec["paths"]["/v1/users/{user_id}/feed"]["get"]["responses"]
    for status in ("401", "422"):
        ref = answers[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse"), ref
    body = api.get("/v1/users/7/feed", headers={"X-API-Key": "wrong"}).json()
    assert ErrorResponse.model_validate(body).error == "unauthorized"
