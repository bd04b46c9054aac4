"""The served feed on one clock, through the API with the real Redis: pages are built for
the data's own time, the freshness rule fires there (and not on the wall clock for a
catalog that ended in 1998), replays may ask for a past moment, and a like without a
timestamp lands seconds after the data's last event instead of decades later."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from .redis_util import delete_prefix, redis_or_missing, unique_prefix, wait_until

USERS = list(range(1, 41))


def _pages(client: TestClient) -> dict[int, list[dict]]:
    out = {}
    for user in USERS:
        response = client.get(f"/v1/users/{user}/feed", params={"k": 20})
        assert response.status_code == 200, response.text
        out[user] = response.json()["items"]
    return out


def _fresh(pages: dict[int, list[dict]]) -> int:
    return sum("fresh" in item["sources"] for page in pages.values() for item in page)


@pytest.fixture(scope="module")
def wall_api(serving_settings):
    """A second service over the same bundle on the wall clock (its own Redis prefix)."""
    from app.service import Service
    from ui.server import create_app

    client = redis_or_missing()
    prefix = unique_prefix()
    settings = serving_settings.model_copy(update={"clock": "wall", "redis_prefix": prefix})
    service = Service.from_settings(settings)
    with TestClient(create_app(service), headers={"X-API-Key": "marquee-dev"}) as api:
        yield api
    delete_prefix(client, prefix)


def test_pages_are_built_on_the_data_clock(api, api_service):
    end = int(api_service.catalog.events["timestamp"].max())
    assert api_service.clock.mode == "data"  # ml-100k ends in 1998: a historical catalog
    body = api.get("/v1/users/1/feed").json()
    assert body["clock"] == "data"
    assert end <= body["served_at"] <= end + 24 * 3600  # the data end plus the uptime


def test_freshness_changes_pages_on_the_data_clock_and_not_on_the_wall(api, wall_api):
    on_data, on_wall = _pages(api), _pages(wall_api)
    assert _fresh(on_data) >= len(USERS)  # recent releases of 1997-98 are lifted
    assert _fresh(on_wall) == 0  # in 2026 no 1998 film is a recent release
    changed = [
        u for u in USERS if [i["item_id"] for i in on_data[u]] != [i["item_id"] for i in on_wall[u]]
    ]
    assert len(changed) >= len(USERS) // 2
    fresh_years = [i["year"] for p in on_data.values() for i in p if "fresh" in i["sources"]]
    assert min(fresh_years) >= 1996


def test_a_replay_may_ask_for_a_past_moment_only_on_the_data_clock(api, wall_api, api_service):
    end = int(api_service.catalog.events["timestamp"].max())
    past = end - 200 * 86400
    body = api.get("/v1/users/3/feed", params={"at": past}).json()
    assert body["served_at"] == past
    later = api.get("/v1/users/3/feed", params={"at": end + 30 * 86400}).json()
    assert later["served_at"] == end + 30 * 86400  # replayed events may run past the data end
    refused = wall_api.get("/v1/users/3/feed", params={"at": past})
    assert refused.status_code == 400 and "data clock" in refused.json()["message"]


def test_a_like_without_a_timestamp_happens_now_on_the_data_clock(api, api_service):
    end = int(api_service.catalog.events["timestamp"].max())
    user, item = 5, 1682
    event = {
        "event_id": f"clock-{uuid.uuid4().hex}",
        "type": "like",
        "user_id": user,
        "item_id": item,
    }
    before = time.time()
    assert api.post("/v1/events", json={"events": [event]}).status_code == 202
    assert wait_until(lambda: item in api_service.user_state(user)[0].history.tolist())
    state, _ = api_service.user_state(user)
    stamp = int(state.history_times[state.history.tolist().index(item)])
    assert end <= stamp <= end + (time.time() - before) + 24 * 3600
