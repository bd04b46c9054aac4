"""Quality guard for the feed's speed levers: the served funnel's page, LOO-full, before
and after, in one run on the same test users.

Run from the repository root:
    marquee bench feed_guard [--dataset ml-100k] [--users 300]
Writes bench/results/feed_guard.json and the feed_guard section of bench/RESULTS.md.

Protocol: the online parity protocol's offline half (bench/online_parity.py): every
user's latest event held out, `--users` random users taken out of the catalog, a bundle
trained on the rest; each test user's page is built by the serving `Funnel` object
from their history at the held-out event's time. "Before" scores the whole merged pool
with the deep ranker (`rank_depth=None`), "after" only its merge-order head
(`ranking.ranker.RANK_DEPTH`), which is the one lever that changes what is ranked; the
others (numpy runtime, MMR's cap mask, co-visitation links, cached user features)
compute the same scores and order, which their unit tests check against the torch
network, a reference MMR, the scipy slice and `build_features`.

Figures: NDCG@10 and Recall@10 of the held-out item (mean over users) and coverage@10
(distinct items on all first pages / catalog items), each with a 95% bootstrap
interval over users, and the paired bootstrap interval of after minus before.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.online_parity import (
    figures,
    offline_funnel,
    offline_pages,
    parity_arguments,
    parity_inputs,
)
from evaluation.bench_io import update_results_md, write_result
from evaluation.parity import paired_bootstrap

COMMAND = "marquee bench feed_guard"
DRAWS = 2000


def coverage_draws(pages: list[list[int]], n_items: int, seed: int = 0) -> np.ndarray:
    """Coverage@10 of bootstrap resamples of users (the same resamples for every arm, as
    the seed is shared, so arms can be compared draw by draw)."""
    rng = np.random.default_rng(seed)
    return np.array(
        [
            len({i for u in rng.integers(0, len(pages), len(pages)) for i in pages[u]}) / n_items
            for _ in range(DRAWS // 4)
        ]
    )


def centered_ci(point: float, draws: np.ndarray) -> tuple[float, float]:
    """95% interval of a distinct-count statistic: a resample with repeated users covers
    fewer items than the sample, so the bootstrap spread is taken around the point
    estimate instead of its biased bootstrap mean."""
    lo, hi = np.quantile(draws - draws.mean(), [0.025, 0.975])
    return point + float(lo), point + float(hi)


def mean_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(DRAWS, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def summarize(pages: dict[str, list[list[int]]], data, n_items: int) -> dict:
    metrics: dict[str, float | int] = {"users": len(data.users)}
    per_user = {name: figures(p, data.users) for name, p in pages.items()}
    draws: dict[str, np.ndarray] = {}
    for name, (ndcg, recall) in per_user.items():
        for metric, values in (("ndcg@10", ndcg), ("recall@10", recall)):
            lo, hi = mean_ci(values)
            metrics[f"{name}.{metric}"] = round(float(values.mean()), 4)
            metrics[f"{name}.{metric}_ci_lo"] = round(lo, 4)
            metrics[f"{name}.{metric}_ci_hi"] = round(hi, 4)
        cover = len({i for p in pages[name] for i in p}) / n_items
        draws[name] = coverage_draws(pages[name], n_items)
        lo, hi = centered_ci(cover, draws[name])
        metrics[f"{name}.coverage@10"] = round(cover, 4)
        metrics[f"{name}.coverage@10_ci_lo"] = round(lo, 4)
        metrics[f"{name}.coverage@10_ci_hi"] = round(hi, 4)
    diff, lo, hi = paired_bootstrap(per_user["after"][0], per_user["before"][0])
    metrics.update(
        {"after_minus_before.ndcg@10": round(diff, 4), "diff_ci_lo": round(lo, 4)}
        | {"diff_ci_hi": round(hi, 4)}
    )
    cover_diff = metrics["after.coverage@10"] - metrics["before.coverage@10"]
    lo, hi = centered_ci(cover_diff, draws["after"] - draws["before"])
    metrics["after_minus_before.coverage@10"] = round(cover_diff, 4)
    metrics["coverage_diff_ci_lo"], metrics["coverage_diff_ci_hi"] = round(lo, 4), round(hi, 4)
    same = [a == b for a, b in zip(pages["after"], pages["before"], strict=True)]
    metrics["identical_pages"] = round(float(np.mean(same)), 4)
    for metric in ("ndcg@10", "coverage@10"):
        inside = (
            metrics[f"before.{metric}_ci_lo"]
            <= metrics[f"after.{metric}"]
            <= metrics[f"before.{metric}_ci_hi"]
        )
        metrics[f"{metric}_within_before_ci"] = int(inside)
    return metrics


def section(m: dict, args) -> str:
    def cell(name: str, metric: str) -> str:
        return (
            f"{m[f'{name}.{metric}']:.4f} ({m[f'{name}.{metric}_ci_lo']:.4f} .. "
            f"{m[f'{name}.{metric}_ci_hi']:.4f})"
        )

    rows = [
        "| ranked candidates | NDCG@10 (95% CI) | Recall@10 (95% CI) | coverage@10 (95% CI) |",
        "|---|---|---|---|",
    ]
    for name, label in (("before", "whole pool"), ("after", f"merge-order head {m['depth']}")):
        rows.append(
            f"| {label} | {cell(name, 'ndcg@10')} | {cell(name, 'recall@10')} | "
            f"{cell(name, 'coverage@10')} |"
        )
    verdict = {1: "within", 0: "outside"}
    return "\n\n".join(
        [
            "## Feed quality guard: the deep ranker on the merge-order head vs the pool",
            f"Command: `{COMMAND} --dataset {args.dataset} --users {args.users} "
            f"--max-epochs {args.max_epochs}`. LOO-full: {m['users']} test users taken out "
            "of the catalog, the bundle trained on the rest, each page (k=10, exploration "
            "on, data clock) built by the serving `Funnel` in-process; 95% bootstrap "
            "intervals over users (coverage: resampled users, spread taken around the estimate).",
            "\n".join(rows),
            f"After minus before NDCG@10: {m['after_minus_before.ndcg@10']:+.4f} (paired "
            f"95% CI {m['diff_ci_lo']:+.4f} .. {m['diff_ci_hi']:+.4f}); coverage@10: "
            f"{m['after_minus_before.coverage@10']:+.4f} (paired 95% CI "
            f"{m['coverage_diff_ci_lo']:+.4f} .. {m['coverage_diff_ci_hi']:+.4f}); identical pages "
            f"for a share {m['identical_pages']} of users. After is "
            f"{verdict[m['ndcg@10_within_before_ci']]} the before interval on NDCG@10 and "
            f"{verdict[m['coverage@10_within_before_ci']]} it on coverage@10.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parity_arguments(parser, users=300, dataset="ml-100k", max_epochs=10)
    parser.add_argument("--workdir", type=Path, default=Path("artifacts") / "guard")
    args = parser.parse_args(argv)

    from ranking.ranker import RANK_DEPTH

    data, settings = parity_inputs(args)
    funnel = offline_funnel(settings, data)
    pages = {}
    for name, depth in (("before", None), ("after", RANK_DEPTH)):
        funnel.rank_depth = depth
        print(f"{name}: pages of {len(data.users)} users, rank depth {depth} ...", flush=True)
        pages[name] = offline_pages(settings, data, explore=True, funnel=funnel)
    metrics = {**summarize(pages, data, len(data.catalog.items)), "depth": RANK_DEPTH}
    print(metrics, flush=True)
    write_result("feed_guard", metrics, COMMAND, args.dataset, args.bench_dir)
    update_results_md("feed_guard", section(metrics, args), args.bench_dir / "RESULTS.md")
    print(section(metrics, args))


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
