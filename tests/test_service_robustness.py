"""The served product stays responsive when a dependency is slow.

Runs a real `marquee serve` process against the real Redis behind a proxy that can delay
Redis replies: a feed request then waits on Redis, and /healthz must still answer at once
because feed work runs off the event loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from evaluation.served import free_port

from .conftest import REPO_ROOT
from .redis_util import delete_prefix, redis_or_missing, unique_prefix
from .slow_proxy import SlowProxy


def _wait_ready(client: httpx.Client, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if client.get("/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready:\n{log.read_text()[-3000:]}")


def test_healthz_answers_while_a_feed_waits_on_a_slow_redis(
    ml100k_bundle, bundle_artifacts: Path, data_dir: Path, tmp_path: Path
) -> None:
    redis_client = redis_or_missing()
    prefix = unique_prefix()
    proxy = SlowProxy()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "MARQUEE_DATA_DIR": str(data_dir),
        "MARQUEE_ARTIFACTS_DIR": str(bundle_artifacts),
        "MARQUEE_CACHE_DIR": str(bundle_artifacts.parent / "cache"),
        "MARQUEE_DATASET": "ml-100k",
        "MARQUEE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
        "MARQUEE_REDIS_PREFIX": prefix,
        "MARQUEE_BUNDLE_POLL_S": "0",
        "MARQUEE_PORT": str(port),
        "MARQUEE_SERVE_WORKER": "0",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-with-worker"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": "marquee-dev"}, timeout=60
    )
    try:
        _wait_ready(client, proc, log)
        assert client.get("/v1/users/7/feed").status_code == 200  # warm
        # Under the request path's Redis timeout (0.25 s), so every call waits, none fails.
        proxy.delay_s = 0.2
        feed_done: list[float] = []

        def slow_feed() -> None:
            assert client.get("/v1/users/8/feed").status_code == 200
            feed_done.append(time.perf_counter())

        started = time.perf_counter()
        threading.Thread(target=slow_feed, daemon=True).start()
        time.sleep(0.05)  # the feed is now waiting on Redis
        health_ms, health_done = [], 0.0
        for _ in range(5):
            t = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            health_done = time.perf_counter()
            health_ms.append((health_done - t) * 1e3)
        deadline = time.monotonic() + 60
        while not feed_done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert feed_done, "the feed never answered"
        assert feed_done[0] - started > 0.3, "the feed did not wait on Redis: proves nothing"
        assert health_done < feed_done[0], "health checks ended after the feed"
        assert max(health_ms) < 50, health_ms
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proxy.close()
        client.close()
        delete_prefix(redis_client, prefix)
