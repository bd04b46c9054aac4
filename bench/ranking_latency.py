"""Ranking latency: score one request's ~500 retrieved candidates with the trained ranker.

Run from the repository root:  marquee bench ranking_latency
Writes bench/results/ranking_latency.json and the ranking_latency section of
bench/RESULTS.md.

Requests are the real LOO-full test requests of ml-latest-small with their real
merged pools (about 500 candidates each); the ranker is trained exactly as in the
ranking report. Each request is timed end to end (feature building + network
forward + blend + sort) one at a time with one torch thread, as a serving worker
would run it. Baseline in the same run: the wide (linear) part alone on the same
features, i.e. what the deep towers cost on top of a logistic ranker.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from app.settings import get_settings
from evaluation.bench_io import update_results_md, write_result
from evaluation.ranking_eval import run_ranker
from evaluation.stage_report import prepare_stages
from ranking.features import build_features
from ranking.ranker import Ranker

COMMAND = "marquee bench ranking_latency"


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    data = prepare_stages(args.dataset, get_settings())
    valid, test = data.pools["valid"], data.pools["test"]
    outcome = run_ranker(
        valid,
        test,
        data.items["valid"],
        data.items["test"],
        data.split,
        data.genres,
        len(data.split.user_ids),
    )
    ranker = Ranker(outcome.net, data.items["test"], outcome.blend)
    torch.set_num_threads(1)
    requests = [(ctx, pool) for ctx, pool in zip(test.ctxs, test.pools, strict=True) if pool]
    for ctx, pool in requests[:50]:  # warm-up
        ranker.rank(ctx, pool)
    full, wide = [], []
    for _ in range(args.repeats):
        for ctx, pool in requests:
            start = time.perf_counter()
            ranker.rank(ctx, pool)
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            x = torch.from_numpy(build_features(ctx, pool, data.items["test"]))
            with torch.inference_mode():
                logits = outcome.net.wide((x - outcome.net.mean) / outcome.net.std)
            np.argsort(-logits[:, 0].numpy())
            wide.append(time.perf_counter() - start)
    sizes = [len(pool) for _, pool in requests]
    ranker_stats, wide_stats = _percentiles(full), _percentiles(wide)
    metrics = {
        "requests": len(requests) * args.repeats,
        "candidates_mean": float(np.mean(sizes)),
        "ranker.p50_ms": round(ranker_stats["p50_ms"], 3),
        "ranker.p99_ms": round(ranker_stats["p99_ms"], 3),
        "linear_baseline.p50_ms": round(wide_stats["p50_ms"], 3),
        "linear_baseline.p99_ms": round(wide_stats["p99_ms"], 3),
        "ranker_vs_linear_p99": round(ranker_stats["p99_ms"] / wide_stats["p99_ms"], 2),
    }
    write_result("ranking_latency", metrics, COMMAND, args.dataset)
    rows = [
        "| scorer | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| multi-task ranker (features + net + blend + sort) | {metrics['ranker.p50_ms']:.3f} "
        f"| {metrics['ranker.p99_ms']:.3f} |",
        f"| linear baseline (features + wide part + sort) | {metrics['linear_baseline.p50_ms']:.3f}"
        f" | {metrics['linear_baseline.p99_ms']:.3f} |",
    ]
    section = "\n\n".join(
        [
            "## Ranking latency: one request's candidate pool",
            f"Command: `{COMMAND}`. Machine: 2 CPU cores, one torch thread per request. "
            f"{metrics['requests']} timed requests (the {len(requests)} LOO-full test requests of "
            f"{args.dataset} x {args.repeats}), {metrics['candidates_mean']:.0f} candidates each "
            "on average.",
            "\n".join(rows),
            f"Ratio ranker / linear baseline at p99: {metrics['ranker_vs_linear_p99']}. "
            "Target: p99 <= 5 ms for 500 candidates.",
        ]
    )
    update_results_md("ranking_latency", section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
