"""A `marquee serve` process for benchmarks: started on a free loopback port, ready-checked."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    port: int, prefix: str, workers: int, redis_url: str, warm: bool = True
) -> subprocess.Popen:
    """Ready (and, with `warm`, done storing every user's candidate lists) or SystemExit."""
    env = {
        **os.environ,
        "MARQUEE_REDIS_URL": redis_url,
        "MARQUEE_REDIS_PREFIX": prefix,
        "MARQUEE_BUNDLE_POLL_S": "0",
        "MARQUEE_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    ready_in_a_row = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            body = json.loads(response.read())
            ready_in_a_row = (
                ready_in_a_row + 1
                if response.status == 200 and (body.get("warm") or not warm)
                else 0
            )
            if ready_in_a_row >= 3 * workers:  # each process answered warm
                return proc
        except (OSError, ValueError, http.client.HTTPException):  # not listening yet
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not become ready within 180 s")
