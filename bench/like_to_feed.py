"""Feedback latency: from POST of a like to the first feed that reflects it.

Run from the repository root (Redis on 127.0.0.1:6379, a trained bundle present):
    marquee bench like_to_feed
Writes bench/results/like_to_feed.json and the like_to_feed section of bench/RESULTS.md.

Against `marquee serve` (one process, its nearline consumer inside, real Redis): for
each trial a catalog user likes a film that is neither on their page nor in their
history, and the feed is polled every 20 ms until the page changes. Baseline in the
same run: the time a plain feed request takes, i.e. the floor of any poll.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import uuid

import numpy as np
import redis

from evaluation.bench_io import update_results_md, write_result
from evaluation.served import free_port, start_server

COMMAND = "marquee bench like_to_feed"
HEADERS = {"X-API-Key": "marquee-dev", "Content-Type": "application/json"}


def call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body else None, headers=HEADERS)
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data}")
    return data


def page(port: int, user: int) -> list[int]:
    return [i["item_id"] for i in call(port, "GET", f"/v1/users/{user}/feed?k=20")["items"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--dataset", default="ml-latest-small")
    args = parser.parse_args(argv)

    from app.settings import get_settings
    from catalog.tables import load_catalog

    catalog = load_catalog(args.dataset, get_settings())
    events = catalog.events
    popular = catalog.items.sort_values("popularity", ascending=False)["item_id"].tolist()[:300]
    users = np.random.default_rng(0).choice(events["user_id"].unique(), args.trials, replace=False)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = start_server(port, prefix, 1, args.redis_url)
    delays, plain = [], []
    try:
        for user in users.tolist():
            start = time.monotonic()
            before = page(port, user)
            plain.append((time.monotonic() - start) * 1e3)
            seen = set(events.loc[events["user_id"] == user, "item_id"]) | set(before)
            liked = next(i for i in popular if i not in seen)
            like = {"event_id": uuid.uuid4().hex, "type": "like", "user_id": user, "item_id": liked}
            start = time.monotonic()
            call(port, "POST", "/v1/events", {"events": [like]})
            while page(port, user) == before and time.monotonic() - start < 10:
                time.sleep(0.02)
            delays.append((time.monotonic() - start) * 1e3)
    finally:
        server.terminate()
        server.wait(timeout=30)
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)

    metrics = {
        "trials": len(delays),
        "like_to_feed.p50_ms": round(float(np.percentile(delays, 50)), 1),
        "like_to_feed.p95_ms": round(float(np.percentile(delays, 95)), 1),
        "like_to_feed.max_ms": round(float(np.max(delays)), 1),
        "plain_feed.p50_ms": round(float(np.percentile(plain, 50)), 1),
        "changed_within_2s": int(sum(d < 2000 for d in delays)),
    }
    write_result("like_to_feed", metrics, COMMAND, args.dataset)
    section = "\n\n".join(
        [
            "## Feedback latency: a like until the feed changes",
            f"Command: `{COMMAND}`. `marquee serve` (one process, nearline consumer inside, real "
            f"Redis); {metrics['trials']} catalog users each like a popular film that is neither "
            "on their page nor in their history; the feed is polled every 20 ms.",
            "| figure | ms |\n|---|---|\n"
            f"| like -> changed feed, p50 | {metrics['like_to_feed.p50_ms']} |\n"
            f"| like -> changed feed, p95 | {metrics['like_to_feed.p95_ms']} |\n"
            f"| like -> changed feed, max | {metrics['like_to_feed.max_ms']} |\n"
            f"| one plain feed request, p50 (baseline) | {metrics['plain_feed.p50_ms']} |",
            f"Changed within 2 s: {metrics['changed_within_2s']} of {metrics['trials']} "
            "(target: every like within 2 s).",
        ]
    )
    update_results_md("like_to_feed", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
