"""Trust on every surface: scoped keys, end-user tokens, input trust, abuse limits, safe
defaults. Real service, real Redis; the probes of the security issue, one test each."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.security.keys import KeyRing, digest, entry_for
from app.security.tokens import TokenSigner

from . import keys
from .keys import headers

ME, OTHER = 7, 8  # catalog users of the ml-100k test bundle


@contextmanager
def client_with(api_service, **overrides) -> Iterator[TestClient]:
    """The API (no UI) over the shared service, with security settings changed."""
    settings = api_service.settings.model_copy(update=overrides)
    with TestClient(create_app(api_service, settings)) as client:
        yield client


@pytest.fixture(scope="module")
def plain(api_service) -> Iterator[TestClient]:
    with client_with(api_service) as client:
        yield client


def token_for(client: TestClient, user_id: int) -> dict[str, str]:
    r = client.post("/v1/tokens", json={"user_id": user_id}, headers=headers(keys.ADMIN))
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def event(user_id: int = ME, **extra) -> dict:
    return {"event_id": uuid.uuid4().hex, "type": "click", "user_id": user_id, "item_id": 50}


# the authorization matrix -----------------------------------------------------------------

CREDENTIALS = ["none", "wrong", "dev", "read", "events", "backfill", "admin", "self", "other"]
# route -> expected status per credential, in CREDENTIALS order. "self" is an end-user
# token for user 7 (every user-specific route asks for user 7), "other" one for user 8.
MATRIX = {
    "feed": [401, 401, 200, 200, 403, 403, 403, 200, 403],
    "onboard": [401, 401, 201, 403, 201, 201, 403, 403, 403],
    "item": [401, 401, 200, 200, 403, 403, 403, 200, 200],
    "similar": [401, 401, 200, 200, 403, 403, 403, 200, 200],
    "search": [401, 401, 200, 200, 403, 403, 403, 200, 200],
    "events": [401, 401, 202, 403, 202, 202, 403, 202, 403],
    "chat": [401, 401, 200, 200, 403, 403, 403, 200, 403],
    "tokens": [401, 401, 403, 403, 403, 403, 201, 403, 403],
    "reload": [401, 401, 403, 403, 403, 403, 200, 403, 403],
}


def _request(client: TestClient, route: str, creds: dict[str, str]):
    chat = {"message": "a comedy", "user_id": ME, "llm": False, "count": 3}
    calls = {
        "feed": lambda: client.get(f"/v1/users/{ME}/feed", params={"k": 3}, headers=creds),
        "onboard": lambda: client.post(
            "/v1/users", json={"liked_genres": ["Comedy"]}, headers=creds
        ),
        "item": lambda: client.get("/v1/items/50", headers=creds),
        "similar": lambda: client.get("/v1/items/50/similar", headers=creds),
        "search": lambda: client.get("/v1/search", params={"q": "star"}, headers=creds),
        "events": lambda: client.post("/v1/events", json={"events": [event()]}, headers=creds),
        "chat": lambda: client.post("/v1/chat", json=chat, headers=creds),
        "tokens": lambda: client.post("/v1/tokens", json={"user_id": ME}, headers=creds),
        "reload": lambda: client.post("/v1/admin/reload", headers=creds),
    }
    return calls[route]()


def test_every_route_answers_each_credential_with_the_exact_status(plain) -> None:
    creds = {
        "none": {},
        "wrong": headers("not-a-key"),
        "dev": headers(keys.DEV),
        "read": headers(keys.READ),
        "events": headers(keys.EVENTS),
        "backfill": headers(keys.BACKFILL),
        "admin": headers(keys.ADMIN),
        "self": token_for(plain, ME),
        "other": token_for(plain, OTHER),
    }
    got: dict[str, list[int]] = {}
    for route in MATRIX:
        got[route] = []
        for name in CREDENTIALS:
            r = _request(plain, route, creds[name])
            got[route].append(r.status_code)
            if r.status_code >= 400:  # every refusal says why, in the one error shape
                body = r.json()
                assert body["error"] and body["message"], (route, name, body)
    assert got == MATRIX


def test_refusals_name_the_problem(plain) -> None:
    missing = plain.get("/v1/items/50").json()["message"]
    assert "X-API-Key" in missing and "Bearer" in missing
    assert plain.get("/v1/items/50", headers=headers("nope")).json()["message"] == "invalid API key"
    scope = plain.post("/v1/admin/reload", headers=headers(keys.DEV)).json()["message"]
    assert scope == "this API key lacks the `admin` scope"
    other = plain.get(f"/v1/users/{ME}/feed", headers=token_for(plain, OTHER)).json()
    assert other["message"] == f"this end-user token acts for user {OTHER} only"


def test_a_forged_or_expired_token_is_a_401(plain) -> None:
    signer = TokenSigner(keys.TOKEN_SECRET.get_secret_value(), 3600)
    token, expires = signer.issue(ME, 60, now=time.time() - 120)  # expired a minute ago
    assert expires < time.time()
    r = plain.get(f"/v1/users/{ME}/feed", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["message"]
    forged = TokenSigner("another-secret", 3600).issue(ME, 600)[0]
    r = plain.get(f"/v1/users/{ME}/feed", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["message"] == "invalid end-user token"


def test_a_token_writes_only_its_own_users_events(plain, api_service) -> None:
    before = sum(1 for _ in api_service.events.read_all())
    mixed = {"events": [event(ME), event(OTHER)]}
    r = plain.post("/v1/events", json=mixed, headers=token_for(plain, ME))
    assert r.status_code == 403
    assert sum(1 for _ in api_service.events.read_all()) == before  # nothing stored


def test_keys_rotate_through_the_keys_file_without_a_restart(api_service, tmp_path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "a"\nscopes = ["read"]\nsha256 = "{digest("old-key")}"\n')
    with client_with(api_service, api_keys_file=path) as client:
        assert client.get("/v1/items/50", headers=headers("old-key")).status_code == 200
        path.write_text(
            f'[[keys]]\nname = "b"\nscopes = ["read"]\nsha256 = "{digest("new-key-xyz")}"\n'
        )
        time.sleep(1.1)  # the file is looked at once a second
        assert client.get("/v1/items/50", headers=headers("new-key-xyz")).status_code == 200
        assert client.get("/v1/items/50", headers=headers("old-key")).status_code == 401
        path.write_text("[[keys]\nbroken")  # a half-written edit keeps the last good keys
        time.sleep(1.1)
        assert client.get("/v1/items/50", headers=headers("new-key-xyz")).status_code == 200


def test_plain_text_keys_in_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="sha256"):
        KeyRing("read:marquee-dev")
    with pytest.raises(ValueError, match="unknown or no scopes"):
        KeyRing(entry_for("k", ["read"]).replace("read", "root"))


# input trust ------------------------------------------------------------------------------


def test_a_far_future_timestamp_is_a_422_and_nothing_is_stored(plain, api_service) -> None:
    before = sum(1 for _ in api_service.events.read_all())
    for key in (keys.DEV, keys.BACKFILL):  # not even a backfill key writes the future
        batch = {"events": [event(), {**event(), "timestamp": 1099511627775}]}
        r = plain.post("/v1/events", json=batch, headers=headers(key))
        assert r.status_code == 422 and "service clock" in r.json()["message"], r.text
    assert sum(1 for _ in api_service.events.read_all()) == before


def test_past_times_need_the_backfill_scope_and_the_skew_window_holds(plain, api_service):
    now = int(api_service.clock.now())  # the service clock (the data's clock here)
    old = {**event(), "timestamp": now - 86_400}
    r = plain.post("/v1/events", json={"events": [old]}, headers=headers(keys.DEV))
    assert r.status_code == 422
    r = plain.post("/v1/events", json={"events": [old]}, headers=headers(keys.BACKFILL))
    assert r.status_code == 202 and r.json()["accepted"] == 1
    near = {**event(), "timestamp": now - 60}
    r = plain.post("/v1/events", json={"events": [near]}, headers=headers(keys.EVENTS))
    assert r.status_code == 202


def test_sign_up_never_overwrites_an_existing_user(plain) -> None:
    body = {"user_id": ME, "liked_genres": ["Western"]}
    r = plain.post("/v1/users", json=body, headers=headers(keys.EVENTS))
    assert r.status_code == 409 and "exists" in r.json()["message"]
    fresh = plain.post("/v1/users", json={"liked_genres": ["Western"]}, headers=headers(keys.DEV))
    assert fresh.status_code == 201
    again = {"user_id": fresh.json()["user_id"], "liked_genres": ["Horror"]}
    assert plain.post("/v1/users", json=again, headers=headers(keys.DEV)).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"liked_titles": ["x" * 201]},
        {"liked_genres": ["g" * 41]},
        {"demographics": {"occupation": "o" * 65}},
    ],
)
def test_free_text_in_sign_up_is_bounded(plain, body) -> None:
    r = plain.post("/v1/users", json=body, headers=headers(keys.DEV))
    assert r.status_code == 422, r.text


def test_free_text_elsewhere_is_bounded(plain) -> None:
    dev = headers(keys.DEV)
    assert plain.get("/v1/search", params={"q": "s" * 201}, headers=dev).status_code == 422
    feed = plain.get(f"/v1/users/{ME}/feed", params={"genres": "g" * 41}, headers=dev)
    assert feed.status_code == 422
    chat = plain.post("/v1/chat", json={"message": "m" * 501, "llm": False}, headers=dev)
    assert chat.status_code == 422


def test_chat_sessions_are_issued_by_the_server_and_bound_to_their_caller(plain) -> None:
    dev = headers(keys.DEV)
    invented = {"message": "something older", "session_id": "mine-12345678", "llm": False}
    assert plain.post("/v1/chat", json=invented, headers=dev).status_code == 404
    first = plain.post(
        "/v1/chat", json={"message": "a 90s thriller", "user_id": ME, "llm": False}, headers=dev
    )
    assert first.status_code == 200
    follow = {"message": "something older", "session_id": first.json()["session_id"]}
    mine = plain.post("/v1/chat", json={**follow, "user_id": ME, "llm": False}, headers=dev)
    assert mine.status_code == 200 and mine.json()["session_id"] == follow["session_id"]
    theirs = plain.post("/v1/chat", json={**follow, "llm": False}, headers=token_for(plain, OTHER))
    assert theirs.status_code == 403
    as_someone_else = {**follow, "user_id": OTHER, "llm": False}
    assert plain.post("/v1/chat", json=as_someone_else, headers=dev).status_code == 403


# abuse limits -----------------------------------------------------------------------------


def test_rate_limits_answer_429_with_retry_after_per_budget(api_service) -> None:
    prefix = f"{api_service.settings.redis_prefix}-rate-{uuid.uuid4().hex[:6]}"
    tight = {"rate_chat": "2/minute", "rate_events": "3/minute", "redis_prefix": prefix}
    with client_with(api_service, **tight) as client:
        dev = headers(keys.DEV)
        chat = {"message": "a comedy", "llm": False, "count": 2}
        statuses = [client.post("/v1/chat", json=chat, headers=dev).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.post("/v1/chat", json=chat, headers=dev)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "chat budget" in limited.json()["message"]
        # other budgets are separate: events still go in, feeds still come
        assert client.post("/v1/events", json={"events": [event()]}, headers=dev).status_code == 202
        assert client.get(f"/v1/users/{ME}/feed", headers=dev).status_code == 200
        # and the budget is the key's: another key still chats
        assert client.post("/v1/chat", json=chat, headers=headers(keys.READ)).status_code == 200


def test_llm_turns_per_user_per_day_are_bounded(api_service) -> None:
    prefix = f"{api_service.settings.redis_prefix}-llm-{uuid.uuid4().hex[:6]}"
    with client_with(api_service, llm_turns_per_user_day=1, redis_prefix=prefix) as client:
        body = {"message": "a comedy", "user_id": ME, "count": 2}
        first = client.post("/v1/chat", json=body, headers=headers(keys.DEV))
        assert first.headers["X-LLM-Budget"] == "ok"
        second = client.post("/v1/chat", json=body, headers=headers(keys.DEV))
        assert second.status_code == 200 and second.headers["X-LLM-Budget"] == "exhausted"
        assert second.json()["reply_source"] == "template" and second.json()["model"] is None


# safe defaults ----------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs(api_service) -> None:
    from app.settings import Settings
    from llm.client import client_from_settings

    settings = Settings(llm_api_key="sk-very-secret", token_secret="tok-secret", llm_model="off")
    assert "sk-very-secret" not in repr(settings) and "tok-secret" not in repr(settings)
    assert "sk-very-secret" not in repr(client_from_settings(settings))
    assert keys.ADMIN not in repr(api_service.settings)


def test_every_credential_presented_must_be_valid_and_one_is_enough(plain) -> None:
    dev = headers(keys.DEV)
    bad_token = {**dev, "Authorization": "Bearer not-a-token"}
    assert plain.get("/v1/items/50", headers=bad_token).status_code == 401
    basic = {**dev, "Authorization": "Basic dXNlcjpwdw=="}
    assert plain.get("/v1/items/50", headers=basic).status_code == 401
    both = {**dev, **token_for(plain, ME)}
    r = plain.get("/v1/items/50", headers=both)
    assert r.status_code == 401 and "not both" in r.json()["message"]
