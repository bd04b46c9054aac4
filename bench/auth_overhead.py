"""Auth and abuse-limit overhead: what the trust layer adds to every /v1 request.

Run from the repository root (Redis on 127.0.0.1:6379 for the shared limiter):
    marquee bench auth_overhead [--n 3000] [--repeats 5] [--no-save]
Writes bench/results/auth_overhead.json and the auth_overhead section of bench/RESULTS.md.

Each step is timed alone, `--n` calls per repeat, median over `--repeats` (the machine
is shared and noisy): API-key lookup (digest + constant-time compare over 10 keys),
end-user token verification, and one moving-window rate check in memory and in Redis.
The baseline, measured in the same run, is one Redis PING round trip: the Redis check
is a Lua script over the same connection, so its ratio to PING is what it costs beyond
the network.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

import redis

from app.security.keys import KeyRing, entry_for
from app.security.rate import RateLimits
from app.security.tokens import TokenSigner
from evaluation.bench_io import update_results_md, write_result

COMMAND = "marquee bench auth_overhead"


def per_call_us(fn: Callable[[], object], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    ring = KeyRing(",".join(entry_for(f"key-{i}", ["read"]) for i in range(10)))
    signer = TokenSigner("bench-secret", 3600)
    token = signer.issue(7, 600)[0]
    prefix = f"bench-auth-{uuid.uuid4().hex[:8]}"
    budgets = {"default": "1000000/minute"}
    memory = RateLimits(budgets, 0)
    shared = RateLimits(budgets, 0, args.redis_url, prefix)
    client = redis.Redis.from_url(args.redis_url)
    n, r = args.n, args.repeats
    try:
        figures = {
            "redis_ping_us": per_call_us(client.ping, n, r),
            "key_lookup_us": per_call_us(lambda: ring.lookup("key-9"), n, r),
            "token_verify_us": per_call_us(lambda: signer.verify(token), n, r),
            "rate_memory_us": per_call_us(lambda: memory.check("default", "k"), n, r),
            "rate_redis_us": per_call_us(lambda: shared.check("default", "k"), n, r),
        }
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    figures["rate_redis_vs_ping"] = figures["rate_redis_us"] / figures["redis_ping_us"]
    lines = [f"| {k} | {v:.2f} |" for k, v in figures.items()]
    section = "\n".join(
        [
            "## auth_overhead",
            f"`{COMMAND} --n {n} --repeats {r}`: per call, median of {r} repeats.",
            "",
            "| step | µs (or ratio) |",
            "|---|---|",
            *lines,
        ]
    )
    print(section)
    if not args.no_save:
        write_result("auth_overhead", figures, COMMAND, "none")
        update_results_md("auth_overhead", section)


if __name__ == "__main__":
    main()
