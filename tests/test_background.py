"""Supervised background tasks: a failing task is restarted with backoff, and reported.

The unit tests drive the supervisor with tasks that fail on purpose. The integration test
breaks the real nearline worker the way production does (a Redis WRONGTYPE error from a
key of the wrong type) on the real Redis, through a real service: before the supervisor,
that thread died for good, `/readyz` said ready, and the event was never applied.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge

from app.background import Backoff, Supervisor
from features.store import SCHEMA_VERSION

from .redis_util import delete_prefix, redis_or_missing, unique_prefix, wait_until


def supervisor(backoff: Backoff) -> tuple[Supervisor, CollectorRegistry]:
    registry = CollectorRegistry()
    restarts = Counter("restarts", "test", ["task"], registry=registry)
    up = Gauge("up", "test", ["task"], registry=registry)
    return Supervisor(restarts, up, backoff), registry


def test_a_failing_task_restarts_with_growing_backoff_until_it_runs() -> None:
    sup, registry = supervisor(Backoff(first_s=0.05, max_s=1.0, healthy_after_s=60))
    attempts: list[float] = []
    running = threading.Event()

    def flaky(stop: threading.Event) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise RuntimeError(f"failure {len(attempts)}")
        running.set()
        stop.wait()

    sup.start("flaky", flaky)
    assert running.wait(5), "the task was not restarted after its failures"
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # doubling
    status = sup.status()["flaky"]
    assert status["up"] and status["restarts"] == 3
    assert status["last_error"] == "RuntimeError: failure 3"
    assert registry.get_sample_value("restarts_total", {"task": "flaky"}) == 3
    assert registry.get_sample_value("up", {"task": "flaky"}) == 1
    assert sup.failing() == []
    sup.stop()
    assert registry.get_sample_value("up", {"task": "flaky"}) == 0


def test_a_task_waiting_to_restart_is_reported_failing_and_a_finished_one_is_not() -> None:
    sup, registry = supervisor(Backoff(first_s=30.0))  # stays in its backoff
    failed = threading.Event()

    def broken(stop: threading.Event) -> None:
        failed.set()
        raise ValueError("no")

    sup.start("broken", broken)
    sup.start("one_shot", lambda stop: None)
    assert failed.wait(5)
    assert wait_until(lambda: sup.failing() == ["broken"], 5)
    assert sup.status()["one_shot"]["done"]
    assert registry.get_sample_value("up", {"task": "broken"}) == 0
    started = time.monotonic()
    sup.stop()  # a task in its backoff wait stops at once, not after 30 s
    assert time.monotonic() - started < 2


def test_the_nearline_worker_recovers_from_a_redis_error_and_applies_the_event(
    serving_settings,
) -> None:
    from fastapi.testclient import TestClient

    from app.service import Service
    from ui.server import create_app

    client = redis_or_missing()
    prefix = unique_prefix()
    settings = serving_settings.model_copy(update={"redis_prefix": prefix, "serve_worker": True})
    bad_key = f"{prefix}:v{SCHEMA_VERSION}:count:click"
    try:
        service = Service.from_settings(settings)
        client.set(bad_key, "a string where the worker keeps a hash")
        with TestClient(create_app(service), headers={"X-API-Key": "marquee-dev"}) as api:
            event = {"event_id": uuid.uuid4().hex, "type": "click", "user_id": 5, "item_id": 50}
            assert api.post("/v1/events", json={"events": [event]}).status_code == 202

            def reported() -> bool:
                ready = api.get("/readyz")
                body = ready.json()
                return ready.status_code == 200 and body["failing"] == ["nearline_worker"]

            assert wait_until(reported, 20), api.get("/readyz").json()
            body = api.get("/readyz").json()
            assert body["degraded"] and not body["checks"]["background"]
            assert "WRONGTYPE" in body["background"]["nearline_worker"]["last_error"]
            metrics = api.get("/metrics").text
            assert 'marquee_background_up{task="nearline_worker"} 0.0' in metrics
            assert 'marquee_background_restarts_total{task="nearline_worker"}' in metrics

            client.delete(bad_key)  # the operator fixes Redis; nothing is restarted by hand

            def clicks() -> float:
                return service.nearline.counters(["click"])["click"].get(50, 0.0)

            assert wait_until(lambda: clicks() == 1.0, 40), "the event was never applied"
            assert wait_until(lambda: not api.get("/readyz").json()["degraded"], 10)
            recent, _ = service.nearline.user_view(5)
            assert [e.item_id for e in recent] == [50]  # applied once, not twice
    finally:
        delete_prefix(client, prefix)
