"""Feed API under load: a closed-loop generator against `marquee serve` with real Redis.

Run from the repository root (Redis on 127.0.0.1:6379, a trained bundle present):
    marquee bench feed_load
Writes bench/results/feed_load.json and the feed_load section of bench/RESULTS.md.

Two load generators, both closed loop (C connections, each sending a request, waiting
for the answer and sending the next) for a fixed time per concurrency level after a
warm-up. `wrk` (Debian's package; bench/wrk/feed.lua draws the paths and adds the API
key) is the default: a native event loop on keep-alive connections, so the figure
measures the server rather than the generator. The Python generator (C threads, a new
connection per request) is the fallback where `wrk` is missing, and `--generator both`
reports the two side by side. Users are
drawn uniformly (seeded) from the catalog's users, so every request runs the
personalized funnel without the LLM; its history-dependent candidate lists come from
the feature store, where the server stored them at start-up. Baselines in the same
run and server: the cold-start feed (users the catalog does not know: popularity
chain, no ranker) and `/healthz` (HTTP + framework floor). The generator runs on the
same machine as the server, so the figures include its CPU cost (`--pin-generator N`
pins `wrk` to CPU N with taskset, where there are cores to spare).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import redis

from evaluation.bench_io import update_results_md, write_result
from evaluation.served import free_port, start_server

COMMAND = "marquee bench feed_load"
API_KEY = "marquee-dev"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "feed.lua"
FIGURES = ("rps", "p50_ms", "p95_ms", "p99_ms", "errors")


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


def run_wrk(
    port: int, paths: list[str], concurrency: int, seconds: float, warmup: float, pin: int | None
) -> dict[str, float]:
    """One level with wrk (a warm-up run first, not counted): the same figures as
    `summarize`, from the Lua script's JSON line."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(paths) + "\n")
    prefix = ["taskset", "-c", str(pin)] if pin is not None else []
    url = f"http://127.0.0.1:{port}"
    try:
        out = ""
        for duration in (warmup, seconds):
            cmd = [*prefix, "wrk", "-t1", f"-c{concurrency}", f"-d{max(duration, 1):.0f}s"]
            cmd += ["--timeout", "10s", "-s", str(WRK_SCRIPT), url, "--", f.name, API_KEY]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        Path(f.name).unlink(missing_ok=True)
    m = json.loads(out.strip().splitlines()[-1])
    return {
        "rps": round(m["requests"] / (m["duration_us"] / 1e6), 1),
        "p50_ms": round(m["p50_us"] / 1e3, 2),
        "p95_ms": round(m["p95_us"] / 1e3, 2),
        "p99_ms": round(m["p99_us"] / 1e3, 2),
        "errors": m["errors"],
    }


def summarize(flat: np.ndarray, n: int, errors: int, seconds: float) -> dict[str, float]:
    return {
        "rps": round(n / seconds, 1),
        "p50_ms": round(float(np.percentile(flat, 50)), 2),
        "p95_ms": round(float(np.percentile(flat, 95)), 2),
        "p99_ms": round(float(np.percentile(flat, 99)), 2),
        "errors": errors,
    }


def measure(args, port: int, generators: list[str], levels: list[int]) -> dict:
    """Every endpoint at every level with every generator: `{gen}.{endpoint}.c{C}.{fig}`."""
    users = _catalog_users(args.dataset)
    rng = np.random.default_rng(0)
    endpoints = {
        "feed": [f"/v1/users/{u}/feed?k={args.k}" for u in rng.choice(users, 500)],
        "cold_feed": [f"/v1/users/{10_000_000 + i}/feed?k={args.k}" for i in range(500)],
        "healthz": ["/healthz"],
    }
    metrics: dict[str, float | int] = {}
    # Settle first: right after start-up the server still finishes background work (the
    # LLM warm-up, the first live refresh), and the first level measured would pay it.
    run_level(port, endpoints["feed"], 8, args.settle, 0.0)
    for gen in generators:
        for name, paths in endpoints.items():
            for c in levels:
                runs = []
                for _ in range(args.repeats):
                    if gen == "wrk":
                        w = run_wrk(port, paths, c, args.seconds, args.warmup, args.pin_generator)
                        runs.append(w)
                    else:
                        runs.append(
                            summarize(*run_level(port, paths, c, args.seconds, args.warmup))
                        )
                    print(gen, name, f"c={c}", json.dumps(runs[-1]), flush=True)
                stats = {k: median_of([r[k] for r in runs]) for k in FIGURES}
                metrics.update({f"{gen}.{name}.c{c}.{k}": v for k, v in stats.items()})
    return metrics


def median_of(values: list) -> float | int:
    """The median of repeated runs, as the figure type it came in (counts stay ints)."""
    m = float(np.median(values))
    return round(m) if all(isinstance(v, int) for v in values) else round(m, 2)


def _catalog_users(dataset: str) -> np.ndarray:
    from app.settings import get_settings
    from catalog.tables import load_catalog

    return load_catalog(dataset, get_settings()).events["user_id"].unique()


def table(metrics: dict, generators: list[str], levels: list[int]) -> list[str]:
    rows = [
        "| generator | endpoint | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "feed": "feed (personalized, no LLM)",
        "cold_feed": "cold-start feed (baseline)",
        "healthz": "/healthz (floor)",
    }
    for gen in generators:
        for name, label in labels.items():
            for c in levels:
                m = [metrics[f"{gen}.{name}.c{c}.{k}"] for k in FIGURES]
                rows.append(f"| {gen} | {label} | {c} | " + " | ".join(map(str, m)) + " |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="Measured time per level.")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2, help="Server processes.")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument(
        "--generator",
        choices=["wrk", "python", "both"],
        default="wrk" if shutil.which("wrk") else "python",
    )
    parser.add_argument("--pin-generator", type=int, default=None, help="CPU for wrk.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per level (median).")
    parser.add_argument("--settle", type=float, default=20.0, help="Unmeasured load first.")
    args = parser.parse_args(argv)
    generators = ["wrk", "python"] if args.generator == "both" else [args.generator]
    levels = [int(c) for c in args.levels.split(",")]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    # One API key sends every request: its default budget (6000 a minute) would turn the
    # load test into a rate-limit test. The limiter still runs (its cost is part of a
    # request), with a budget this run cannot reach.
    os.environ["MARQUEE_RATE_DEFAULT"] = "100000000/minute"
    os.environ["MARQUEE_DATASET"] = args.dataset  # the server serves the users asked for
    port = free_port()
    server = start_server(port, prefix, args.workers, args.redis_url)
    metrics: dict[str, float | int] = {"server_workers": args.workers, "k": args.k}
    try:
        metrics.update(measure(args, port, generators, levels))
    finally:
        server.terminate()
        server.wait(timeout=30)
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for lo in range(0, len(keys), 1000):
            client.delete(*keys[lo : lo + 1000])

    write_result("feed_load", metrics, COMMAND, args.dataset)
    verdicts = []
    for gen in generators:
        c8 = {k: metrics.get(f"{gen}.feed.c8.{k}") for k in ("rps", "p99_ms")}
        cold8 = metrics.get(f"{gen}.cold_feed.c8.rps")
        ratio = round(float(c8["rps"]) / float(cold8), 2) if c8["rps"] and cold8 else None
        verdicts.append(
            f"{gen}: personalized feed at concurrency 8 p99 {c8['p99_ms']} ms (target <= 25) "
            f"at {c8['rps']} requests/s; personalized / cold-start throughput {ratio} "
            "(target >= 0.5)."
        )
    section = "\n\n".join(
        [
            "## Feed API under load (closed loop, real Redis)",
            f"Command: `{COMMAND} --dataset {args.dataset} --generator {args.generator} "
            f"--levels {args.levels} --seconds {args.seconds:g}`; every figure is the median "
            f"of {args.repeats} runs of the level. "
            f"`marquee serve --workers {args.workers}` on loopback, k={args.k}, "
            f"{args.seconds:.0f} s per level after {args.warmup:.0f} s warm-up (and "
            f"{args.settle:.0f} s of unmeasured load after start-up), measured once "
            "every catalog user's history-dependent candidate lists are stored (the server "
            "computes them at start-up); the load generator shares the CPU cores with the "
            "server. wrk: one thread (bench/wrk/feed.lua); python: one thread per connection; "
            "both open a new connection per request, so requests spread over the server's "
            "processes.",
            "\n".join(table(metrics, generators, levels)),
            " ".join(verdicts),
        ]
    )
    update_results_md("feed_load", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
