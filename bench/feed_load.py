"""Feed API under load: a closed-loop generator against `marquee serve` with real Redis.

Run from the repository root (Redis on 127.0.0.1:6379, a trained bundle present):
    marquee bench feed_load
Writes bench/results/feed_load.json and the feed_load section of bench/RESULTS.md.

Each of C client threads sends a request, waits for the answer and sends the next
(closed loop), for a fixed time per concurrency level after a warm-up; users are
drawn uniformly (seeded) from the catalog's users, so every request runs the
personalized funnel without the LLM; its history-dependent candidate lists come from
the feature store, where the server stored them at start-up. Baselines in the same
run and server: the cold-start feed (users the catalog does not know: popularity
chain, no ranker) and `/healthz` (HTTP + framework floor). The generator runs on the
same 2-core machine as the server, so the figures include its CPU cost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid

import numpy as np
import redis

from evaluation.bench_io import update_results_md, write_result
from evaluation.served import free_port, start_server

COMMAND = "marquee bench feed_load"
API_KEY = "marquee-dev"


def run_level(port: int, paths: list[str], concurrency: int, seconds: float, warmup: float):
    """(latencies in ms, completed requests, errors, wall seconds) after the warm-up."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_at = time.monotonic() + warmup
    stop_at = start_at + seconds

    def client(slot: int) -> None:
        rng = np.random.default_rng(slot)
        while True:
            path = paths[int(rng.integers(len(paths)))]
            t0 = time.monotonic()
            if t0 >= stop_at:
                return
            # a new connection per request, as from many independent users: requests then
            # spread over the server processes instead of sticking to one per connection
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path, headers={"X-API-Key": API_KEY, "Connection": "close"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            t1 = time.monotonic()
            if t0 >= start_at and t1 <= stop_at:
                latencies[slot].append((t1 - t0) * 1e3)
                errors[slot] += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = np.array([x for lat in latencies for x in lat])
    return flat, len(flat), sum(errors), seconds


def summarize(flat: np.ndarray, n: int, errors: int, seconds: float) -> dict[str, float]:
    return {
        "rps": round(n / seconds, 1),
        "p50_ms": round(float(np.percentile(flat, 50)), 2),
        "p95_ms": round(float(np.percentile(flat, 95)), 2),
        "p99_ms": round(float(np.percentile(flat, 99)), 2),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="Measured time per level.")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="Server processes.")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)

    from app.settings import get_settings
    from catalog.tables import load_catalog

    users = load_catalog(args.dataset, get_settings()).events["user_id"].unique()
    rng = np.random.default_rng(0)
    known = [f"/v1/users/{u}/feed?k={args.k}" for u in rng.choice(users, 500)]
    cold = [f"/v1/users/{10_000_000 + i}/feed?k={args.k}" for i in range(500)]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    server = start_server(port, prefix, args.workers, args.redis_url)
    levels = [int(c) for c in args.levels.split(",")]
    metrics: dict[str, float | int] = {"server_workers": args.workers, "k": args.k}
    try:
        for name, paths in (("feed", known), ("cold_feed", cold), ("healthz", ["/healthz"])):
            for c in levels:
                stats = summarize(*run_level(port, paths, c, args.seconds, args.warmup))
                metrics.update({f"{name}.c{c}.{key}": value for key, value in stats.items()})
                print(name, f"c={c}", json.dumps(stats), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for lo in range(0, len(keys), 1000):
            client.delete(*keys[lo : lo + 1000])

    write_result("feed_load", metrics, COMMAND, args.dataset)
    rows = [
        "| endpoint | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "feed": "feed (personalized, no LLM)",
        "cold_feed": "cold-start feed (baseline)",
        "healthz": "/healthz (floor)",
    }
    for name, label in labels.items():
        for c in levels:
            m = {
                k: metrics[f"{name}.c{c}.{k}"]
                for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "errors")
            }
            rows.append(
                f"| {label} | {c} | {m['rps']} | {m['p50_ms']} | {m['p95_ms']} | "
                f"{m['p99_ms']} | {m['errors']} |"
            )
    c8 = {k: metrics.get(f"feed.c8.{k}") for k in ("rps", "p99_ms")}
    cold8 = metrics.get("cold_feed.c8.rps")
    ratio = round(float(c8["rps"]) / float(cold8), 2) if c8["rps"] and cold8 else None
    section = "\n\n".join(
        [
            "## Feed API under load (closed loop, real Redis)",
            f"Command: `{COMMAND}`. `marquee serve --workers {args.workers}` on loopback, "
            f"k={args.k}, {args.seconds:.0f} s per level after {args.warmup:.0f} s warm-up, "
            "measured once every catalog user's history-dependent candidate lists are stored "
            "(the server computes them at start-up); the load generator shares the 2 CPU cores "
            "with the server.",
            "\n".join(rows),
            f"Target at concurrency 8: p99 <= 50 ms and >= 150 requests/s; measured p99 "
            f"{c8['p99_ms']} ms at {c8['rps']} requests/s. Personalized / cold-start throughput "
            f"at concurrency 8: {ratio}.",
        ]
    )
    update_results_md("feed_load", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
