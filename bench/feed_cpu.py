"""CPU per personalized page: the service's own stage timings over sequential requests.

Run from the repository root (Redis on 127.0.0.1:6379, a trained bundle present):
    marquee bench feed_cpu [--dataset ml-latest-small] [--requests 300] [--repeats 3]
Writes bench/results/feed_cpu.json and the feed_cpu section of bench/RESULTS.md.

The `Service` is built in this process exactly as `marquee serve` builds it (real
Redis under a run prefix, batch features pushed, every sampled user's stored candidate
lists computed first, as the server does at start-up). Then one request at a time, no
concurrency: each page's stage timings (the server's `timings_ms`, plus the feature
store read, which the service records only as a metric) and the thread CPU time of the
whole `Service.feed` call. Sequential, so the figure is CPU per page, not queueing.
Figures are medians over `repeats` passes of the per-pass means.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import numpy as np
import redis

from evaluation.bench_io import update_results_md, write_result

COMMAND = "marquee bench feed_cpu"
STAGES = ("features", "retrieval", "ranking", "rules", "explain")


def one_pass(service, users: np.ndarray, k: int) -> dict[str, float]:
    """Mean per-stage milliseconds and thread CPU milliseconds per request."""
    from app.funnel import FeedQuery

    sums = dict.fromkeys((*STAGES, "cpu", "wall"), 0.0)
    personalized = stored = 0
    for user in users.tolist():
        start = time.perf_counter()
        service.reader.read(int(user))  # what Service.feed reads first, timed on its own
        sums["features"] += (time.perf_counter() - start) * 1e3
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        out = service.feed(int(user), FeedQuery(k=k))
        sums["cpu"] += (time.thread_time() - cpu0) * 1e3
        sums["wall"] += (time.perf_counter() - wall0) * 1e3
        personalized += out.result.stage == "personalized"
        stored += out.result.fresh_lists is None  # history lists read back, not recomputed
        for stage in STAGES[1:]:
            sums[stage] += out.result.timings_ms.get(stage, 0.0)
    n = len(users)
    means = {name: value / n for name, value in sums.items()}
    means["stage_sum"] = sum(means[s] for s in STAGES)
    means["personalized_share"] = personalized / n
    means["stored_lists_share"] = stored / n
    return means


def measure(
    dataset: str, redis_url: str, requests: int, repeats: int, k: int, depth: int | None = None
) -> dict:
    from app.service import Service
    from app.settings import get_settings

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = get_settings().model_copy(
        update={"dataset": dataset, "redis_url": redis_url, "redis_prefix": prefix}
    )
    service = Service.from_settings(settings)
    if depth is not None:  # a lever trial: the ranked head's size (0 = the whole pool)
        service.funnel.rank_depth = depth or None
    try:
        users = np.unique(service.catalog.events["user_id"].to_numpy())
        sample = np.random.default_rng(0).choice(users, requests)
        service.precompute_lists(np.unique(sample).tolist())
        one_pass(service, sample[:20], k)  # warm-up: lazy imports, allocator, caches
        passes = [one_pass(service, sample, k) for _ in range(repeats)]
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for lo in range(0, len(keys), 1000):
            client.delete(*keys[lo : lo + 1000])
    return {name: round(float(np.median([p[name] for p in passes])), 3) for name in passes[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="Print only (lever trials).")
    parser.add_argument(
        "--rank-depth", type=int, default=None, help="Override the ranked head (0: whole pool)."
    )
    args = parser.parse_args(argv)
    metrics = measure(
        args.dataset, args.redis_url, args.requests, args.repeats, args.k, args.rank_depth
    )
    print(metrics, flush=True)
    if args.no_write:
        return
    metrics = {**metrics, "requests": args.requests, "repeats": args.repeats, "k": args.k}
    write_result("feed_cpu", metrics, COMMAND, args.dataset)
    rows = ["| stage | ms per page (median of pass means) |", "|---|---|"]
    rows += [f"| {s} | {metrics[s]} |" for s in (*STAGES, "stage_sum", "cpu", "wall")]
    section = "\n\n".join(
        [
            "## Feed CPU per personalized page (sequential, in-process service, real Redis)",
            f"Command: `{COMMAND} --dataset {args.dataset} --requests {args.requests} "
            f"--repeats {args.repeats}`, k={args.k}; personalized share "
            f"{metrics['personalized_share']}, stored candidate lists reused for a share "
            f"{metrics['stored_lists_share']}. `cpu` is the thread CPU time of one "
            "`Service.feed` call (feature read included); `stage_sum` the sum of the stage "
            "timings.",
            "\n".join(rows),
        ]
    )
    update_results_md("feed_cpu", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
