"""The nearline worker against real Redis: at-least-once delivery, exactly-once effect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from features.events import Event, RedisEventLog, StoredEvent
from features.nearline import RedisNearline
from features.worker import GROUP, StreamWorker, WorkerConfig

from .conftest import REPO_ROOT
from .redis_util import URL, redis_prefix, wait_until


def clicks(start: int, n: int) -> list[StoredEvent]:
    now = int(time.time())
    events = [
        Event(
            event_id=f"click-{i:07d}",
            type="click",
            user_id=1 + i % 7,
            item_id=1 + i % 13,
            timestamp=now,
        )
        for i in range(start, start + n)
    ]
    return [StoredEvent.accept(e, variant="control") for e in events]


def total_clicks(state: RedisNearline) -> float:
    return sum(state.counters(["click"])["click"].values())


def test_worker_applies_the_stream_and_acknowledges() -> None:
    with redis_prefix() as (client, prefix):
        RedisEventLog(client, prefix).append(clicks(0, 300))
        state = RedisNearline(client, prefix)
        worker = StreamWorker(client, prefix, state, "w1", WorkerConfig(batch=64, block_ms=10))
        assert worker.drain() == 300
        assert total_clicks(state) == 300 and worker.lag() == 0


def test_a_dead_consumers_pending_entries_are_claimed_and_applied_once() -> None:
    with redis_prefix() as (client, prefix):
        RedisEventLog(client, prefix).append(clicks(0, 100))
        state = RedisNearline(client, prefix)
        config = WorkerConfig(batch=100, block_ms=10, claim_idle_ms=0)
        dead = StreamWorker(client, prefix, state, "dead", config)
        # the dead consumer read everything and applied half before crashing, unacknowledged
        entries = client.xreadgroup(GROUP, "dead", {dead.stream: ">"}, count=100)[0][1]
        state.apply([StoredEvent.from_json(f[b"event"]) for _, f in entries[:50]])
        assert client.xpending(dead.stream, GROUP)["pending"] == 100
        StreamWorker(client, prefix, state, "alive", config).drain()
        assert total_clicks(state) == 100  # the replayed half was skipped, the rest applied
        assert client.xpending(dead.stream, GROUP)["pending"] == 0


def _start_worker(prefix: str) -> subprocess.Popen:
    env = {**os.environ, "MARQUEE_REDIS_URL": URL, "MARQUEE_REDIS_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--consumer", "w-stable", "--batch", "7"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_no_accepted_event_is_lost_across_a_worker_kill_and_restart() -> None:
    with redis_prefix() as (client, prefix):
        log = RedisEventLog(client, prefix)
        state = RedisNearline(client, prefix)
        worker = _start_worker(prefix)
        try:
            sent = 0
            for _ in range(20):  # traffic while the worker runs
                log.append(clicks(sent, 100))
                sent += 100
            assert wait_until(lambda: total_clicks(state) > 0, 60), "worker never started"
            worker.send_signal(signal.SIGKILL)  # no chance to finish or acknowledge its batch
            worker.wait(timeout=10)
            assert total_clicks(state) <= sent  # nothing applied twice before the kill
            for _ in range(10):  # accepted while no worker runs at all
                log.append(clicks(sent, 100))
                sent += 100
            worker = _start_worker(prefix)
            assert wait_until(lambda: total_clicks(state) >= sent, 60), (
                f"{total_clicks(state)} of {sent} applied"
            )
            time.sleep(0.5)  # anything applied twice would show up now
            assert total_clicks(state) == sent
            assert wait_until(lambda: client.xpending(log.stream, GROUP)["pending"] == 0, 10)
        finally:
            worker.kill()
            worker.wait(timeout=10)
