"""Retrieval latency: user tower + top-500 ANN search on a generated 1M-item catalog.

Run from the repository root:  marquee bench retrieval_latency
(or python bench/retrieval_latency.py).
Writes bench/results/retrieval_latency.json and the retrieval_latency section of bench/RESULTS.md.
A quick run that leaves the committed results alone:
`marquee bench retrieval_latency --items 100000 --queries 300 --no-save`.

Catalog. Real item embedding spaces are clustered (genres, franchises, eras), and
clustering is what makes ANN search hard or easy: uniform random vectors in 64-d
have almost no structure, so every index looks either hopeless or perfect. The
catalog is therefore a seeded mixture of Gaussians: a few thousand centres on the
unit sphere, cluster sizes skewed (log-normal weights, as genres are), a spread
that differs per cluster (tight franchises, loose dramas), L2-normalized like the
item tower's output.

Queries. Latency is measured with the real user tower (`TwoTowerModel`, default
config but for max_history=200, twice the current default, so its cost is an upper
bound: dim 64, 200-item histories with random time gaps over a 5,000-item
vocabulary with random features). Its weights are untrained: the forward pass
costs the same, but its vectors bear no relation to the generated catalog. Recall
is therefore measured on "user-like" queries too: the normalized mean of a few
catalog items drawn from one or two clusters, plus noise, which is what a trained
tower produces for a user whose taste spans a genre or two. Recall on the tower's
own (random-looking) vectors is reported beside it as the harder, less realistic
case.

Each request runs alone (one thread for torch and faiss, as in a one-request-per-
worker server) after a warm-up: user tower forward, then top-500 search. Every
request is timed `--repeats` times over; the percentiles reported are medians
across repeats because the 2-core machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from evaluation.bench_io import update_results_md, write_result
from retrieval.ann import KINDS, AnnConfig, AnnIndex, ann_recall, ivf_lists_for
from retrieval.features import N_YEAR_BUCKETS, ItemFeatures
from retrieval.two_tower import N_GAPS, TwoTowerConfig, TwoTowerModel

COMMAND = "marquee bench retrieval_latency"
DIM = 64
TOP_K = 500
RECALL_K = 100
TARGET_P99_MS = 10.0
TARGET_RECALL = 0.95
VOCAB = 5_000  # items the user tower knows (histories draw from these)
HISTORY = 200
TEXT_DIM = 384  # the sentence encoder's dimension
N_GENRES = 20
WARMUP = 50


@dataclass(frozen=True)
class Catalog:
    vectors: np.ndarray  # (n, DIM) float32, unit rows
    ids: np.ndarray  # (n,) raw ids, deliberately not row positions
    cluster: np.ndarray  # (n,) mixture component of each item
    clusters: int


@dataclass(frozen=True)
class Requests:
    histories: np.ndarray  # (q, HISTORY) int64 vocabulary slots 1..VOCAB
    gaps: np.ndarray  # (q, HISTORY) int64 time-gap bucket before each history item
    context: np.ndarray  # (q, 3) int64 hour, weekday, gap bucket since the latest event


@dataclass(frozen=True)
class Latency:
    total_ms: np.ndarray  # (repeats, q) user tower + search
    tower_ms: np.ndarray
    search_ms: np.ndarray


def generate_catalog(n: int, clusters: int, seed: int) -> Catalog:
    """A seeded Gaussian mixture on the unit sphere (see the module docstring for why)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((clusters, DIM), dtype=np.float32))
    weights = rng.lognormal(0.0, 1.0, clusters)
    cluster = rng.choice(clusters, n, p=weights / weights.sum())
    # noise norm relative to the centre: 0.5 (cosine to centre ~0.9) to 1.2 (~0.65)
    spread = rng.uniform(0.5, 1.2, clusters).astype(np.float32) / np.sqrt(DIM)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors *= spread[cluster, None]
    vectors += centres[cluster]
    ids = np.arange(n, dtype=np.int64) * 7 + 1_000_003
    return Catalog(_unit(vectors), ids, cluster, clusters)


def user_like_queries(catalog: Catalog, n: int, seed: int) -> np.ndarray:
    """Normalized mean of 3-10 items from one or two clusters, plus noise."""
    rng = np.random.default_rng(seed)
    order = np.argsort(catalog.cluster, kind="stable")
    starts = np.searchsorted(catalog.cluster[order], np.arange(catalog.clusters + 1))
    # users follow popular clusters more often, as the item distribution does
    popularity = np.diff(starts) / len(order)
    queries = np.empty((n, DIM), dtype=np.float32)
    for i in range(n):
        picked = rng.choice(catalog.clusters, rng.integers(1, 3), replace=False, p=popularity)
        members = np.concatenate([order[starts[c] : starts[c + 1]] for c in picked])
        items = catalog.vectors[rng.choice(members, rng.integers(3, 11))]
        noise = rng.standard_normal(DIM).astype(np.float32) * (0.3 / np.sqrt(DIM))
        queries[i] = items.mean(axis=0) + noise
    return _unit(queries)


def tower_model(seed: int) -> TwoTowerModel:
    """The real two-tower model over a random vocabulary; untrained weights cost the same."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    features = ItemFeatures(
        item_ids=np.arange(VOCAB, dtype=np.int64),
        genres=(rng.random((VOCAB, N_GENRES)) < 0.15).astype(np.float32),
        year_buckets=rng.integers(0, N_YEAR_BUCKETS, VOCAB),
        text=_unit(rng.standard_normal((VOCAB, TEXT_DIM), dtype=np.float32)),
        genre_vocab=tuple(f"genre{g}" for g in range(N_GENRES)),
    )
    return TwoTowerModel(features, TwoTowerConfig(dim=DIM, max_history=HISTORY)).eval()


def random_requests(n: int, seed: int) -> Requests:
    rng = np.random.default_rng(seed)
    histories = rng.integers(1, VOCAB + 1, (n, HISTORY), dtype=np.int64)
    gaps = rng.integers(0, N_GAPS, (n, HISTORY), dtype=np.int64)
    context = np.stack([rng.integers(0, 24, n), rng.integers(0, 7, n), rng.integers(0, N_GAPS, n)])
    return Requests(histories, gaps, context.T.astype(np.int64))


def tower_vectors(model: TwoTowerModel, requests: Requests) -> np.ndarray:
    """All requests' user vectors in one batch: used for recall, not for timing."""
    with torch.inference_mode():
        users = model.user_vectors(
            torch.from_numpy(requests.histories),
            torch.from_numpy(requests.gaps),
            torch.zeros(len(requests.histories), 3, dtype=torch.long),
            torch.from_numpy(requests.context),
        )
    return users.numpy()


def build_index(catalog: Catalog, kind: str, config: AnnConfig) -> tuple[AnnIndex, float]:
    """(index, build seconds), with a live progress bar per build phase."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    columns += (MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"build {kind}: {phase}", total=total)
            bar.update(tasks[phase], completed=done)

        start = time.perf_counter()
        index = AnnIndex.build(catalog.vectors, catalog.ids, kind, config, progress=report)
        seconds = time.perf_counter() - start
    return index, seconds


def time_requests(
    model: TwoTowerModel, index: AnnIndex, requests: Requests, repeats: int
) -> Latency:
    """Serve every request alone, end to end, `repeats` times over after a warm-up."""
    n = len(requests.histories)
    demographics = torch.zeros(1, 3, dtype=torch.long)
    times = np.zeros((2, repeats, n))  # tower, search
    with torch.inference_mode():
        for i in range(min(WARMUP, n)):
            _serve(model, index, requests, i, demographics)
        for r in range(repeats):
            for i in range(n):
                times[:, r, i] = _serve(model, index, requests, i, demographics)
    return Latency(times[0] + times[1], times[0], times[1])


def _serve(
    model: TwoTowerModel, index: AnnIndex, requests: Requests, i: int, demographics: torch.Tensor
) -> tuple[float, float]:
    """One request: (user tower ms, search ms)."""
    start = time.perf_counter()
    user = model.user_vectors(
        torch.from_numpy(requests.histories[i : i + 1]),
        torch.from_numpy(requests.gaps[i : i + 1]),
        demographics,
        torch.from_numpy(requests.context[i : i + 1]),
    )
    tower_done = time.perf_counter()
    index.search(user.numpy(), TOP_K)
    end = time.perf_counter()
    return (tower_done - start) * 1e3, (end - tower_done) * 1e3


def percentile_ms(samples: np.ndarray, q: float) -> float:
    """The q-th percentile of each repeat, then the median across repeats."""
    return float(np.median(np.percentile(samples, q, axis=1)))


def kind_metrics(
    kind: str,
    index: AnnIndex,
    latency: Latency,
    exact: dict[str, np.ndarray],
    queries: dict[str, np.ndarray],
) -> dict[str, float]:
    metrics = {
        "p50_ms": percentile_ms(latency.total_ms, 50),
        "p95_ms": percentile_ms(latency.total_ms, 95),
        "p99_ms": percentile_ms(latency.total_ms, 99),
        "tower_p50_ms": percentile_ms(latency.tower_ms, 50),
        "search_p50_ms": percentile_ms(latency.search_ms, 50),
        "search_p99_ms": percentile_ms(latency.search_ms, 99),
    }
    _, user_like = index.search(queries["user_like"], TOP_K)
    _, tower = index.search(queries["tower"], TOP_K)
    metrics["recall@100"] = ann_recall(user_like, exact["user_like"], RECALL_K)
    metrics["recall@500"] = ann_recall(user_like, exact["user_like"], TOP_K)
    metrics["tower_recall@100"] = ann_recall(tower, exact["tower"], RECALL_K)
    return {f"{kind}.{name}": value for name, value in metrics.items()}


def run(args: argparse.Namespace) -> tuple[dict[str, float | int], str]:
    catalog = generate_catalog(args.items, args.clusters, args.seed)
    print(f"catalog: {args.items:,} items, {args.clusters:,} clusters, dim {DIM}")
    model = tower_model(args.seed)
    requests = random_requests(args.queries, args.seed + 1)
    queries = {
        "user_like": user_like_queries(catalog, args.queries, args.seed + 2),
        "tower": tower_vectors(model, requests),
    }
    config = AnnConfig(
        hnsw_m=args.hnsw_m,
        hnsw_ef_construction=args.ef_construction,
        hnsw_ef_search=args.ef_search,
        ivf_nprobe=args.nprobe,
        refine_factor=args.refine_factor,
    )
    metrics: dict[str, float | int] = {
        "catalog.items": args.items,
        "catalog.clusters": args.clusters,
        "catalog.dim": DIM,
        "queries": args.queries,
        "repeats": args.repeats,
    }
    exact = ground_truth(catalog, queries)
    for kind in args.kinds:
        metrics.update(bench_kind(kind, catalog, config, model, requests, queries, exact, args))
    if "exact" in args.kinds:
        for kind in args.kinds:
            if kind != "exact":
                speedup = metrics["exact.p99_ms"] / metrics[f"{kind}.p99_ms"]
                metrics[f"{kind}.speedup_vs_exact"] = speedup
    metrics = {k: _rounded(k, v) for k, v in metrics.items()}
    return metrics, results_markdown(metrics, args)


def ground_truth(catalog: Catalog, queries: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exact top-k ids for every query set (its own index, so `--kinds` may leave exact out)."""
    _set_threads(os.cpu_count() or 1)
    index = AnnIndex.build(catalog.vectors, catalog.ids, "exact")
    return {name: index.search(vectors, TOP_K)[1] for name, vectors in queries.items()}


def bench_kind(
    kind: str,
    catalog: Catalog,
    config: AnnConfig,
    model: TwoTowerModel,
    requests: Requests,
    queries: dict[str, np.ndarray],
    exact: dict[str, np.ndarray],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Build one index with every core, then serve with `--threads`."""
    _set_threads(os.cpu_count() or 1)
    index, build_s = build_index(catalog, kind, config)
    _set_threads(args.threads)
    print(f"{kind}: built in {build_s:.1f} s; serving {args.queries} requests x {args.repeats}")
    latency = time_requests(model, index, requests, args.repeats)
    metrics = kind_metrics(kind, index, latency, exact, queries)
    metrics[f"{kind}.build_s"] = build_s
    metrics[f"{kind}.index_mb"] = faiss.serialize_index(index.index).nbytes / 2**20
    print(f"{kind}: p99 {metrics[f'{kind}.p99_ms']:.2f} ms, R@100 {metrics[f'{kind}.recall@100']}")
    return metrics


COLUMNS = (  # (metric suffix, header, decimals)
    ("build_s", "build s", 1),
    ("index_mb", "index MiB", 1),
    ("recall@100", "recall@100", 4),
    ("recall@500", "recall@500", 4),
    ("tower_recall@100", "recall@100 (tower queries)", 4),
    ("tower_p50_ms", "tower p50 ms", 2),
    ("search_p50_ms", "search p50 ms", 2),
    ("search_p99_ms", "search p99 ms", 2),
    ("p50_ms", "p50 ms", 2),
    ("p95_ms", "p95 ms", 2),
    ("p99_ms", "p99 ms", 2),
    ("speedup_vs_exact", "speedup vs exact", 1),
)


def _rounded(name: str, value: float | int) -> float | int:
    """JSON holds exactly the figures the Markdown shows, so the two can be cross-checked."""
    if isinstance(value, int):
        return value
    decimals = next((d for suffix, _, d in COLUMNS if name.endswith(f".{suffix}")), 4)
    return round(float(value), decimals)


def results_markdown(metrics: dict[str, float | int], args: argparse.Namespace) -> str:
    shipped = AnnConfig()
    return "\n\n".join(
        [
            f"## Retrieval latency: user tower + top-{TOP_K} ANN search",
            f"Command: `{_command(args)}` (date {time.strftime('%Y-%m-%d')}). Machine: "
            f"{os.cpu_count()} CPU cores, no GPU, shared with other jobs. Requests are served "
            f"one at a time with {args.threads} thread(s) for torch and faiss; builds use "
            "every core.",
            f"Catalog: {metrics['catalog.items']:,} generated items (Gaussian mixture of "
            f"{metrics['catalog.clusters']:,} clusters, dim {metrics['catalog.dim']}, "
            f"L2-normalized). {metrics['queries']} requests, each timed {metrics['repeats']} "
            "times; percentiles are medians across repeats. Latency = user tower (untrained "
            f"`TwoTowerModel`, {HISTORY}-item history) + top-{TOP_K} search.",
            _table(metrics, args.kinds),
            f"Recall@{RECALL_K} and @{TOP_K}: against exact search, on user-like queries "
            "(normalized mean of catalog items from one or two clusters, plus noise). "
            "Tower queries: the untrained tower's vectors, which point in random directions "
            "away from every cluster; graph search is weakest there, so re-measure with the "
            "trained tower. Index MiB: the serialized faiss index (about its size in memory; "
            "IVF-PQ keeps the raw vectors for exact re-scoring). Speedup: exact p99 / p99.",
            f"Target: p99 <= {TARGET_P99_MS:g} ms and recall@{RECALL_K} >= {TARGET_RECALL}. "
            f"HNSW: M={args.hnsw_m}, efConstruction={args.ef_construction}, "
            f"efSearch=max({args.ef_search}, k) = {max(args.ef_search, TOP_K)}. IVF-PQ: "
            f"{ivf_lists_for(args.items, shipped)} lists, nprobe={args.nprobe}, "
            f"{shipped.pq_bytes} bytes/item ({DIM // shipped.pq_bytes}-d sub-quantizers), "
            f"exact re-scoring of {args.refine_factor}x{TOP_K} candidates.",
        ]
    )


def _table(metrics: dict[str, float | int], kinds: list[str]) -> str:
    header = "| index | " + " | ".join(title for _, title, _ in COLUMNS) + " | meets target |"
    lines = [header, "|---" * (len(COLUMNS) + 2) + "|"]
    for kind in kinds:
        cells = [_cell(metrics.get(f"{kind}.{suffix}"), d) for suffix, _, d in COLUMNS]
        ok = (
            metrics[f"{kind}.p99_ms"] <= TARGET_P99_MS
            and metrics[f"{kind}.recall@100"] >= TARGET_RECALL
        )
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def _cell(value: float | int | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _command(args: argparse.Namespace) -> str:
    """The command that reproduces this run: the defaults stay implicit."""
    given = [a for a in args.argv if a != "--no-save"]
    return " ".join([COMMAND, *given])


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    parser.add_argument("--threads", type=int, default=1, help="per request (serving)")
    shipped = AnnConfig()  # the defaults are what gets benchmarked unless overridden
    parser.add_argument("--hnsw-m", type=int, default=shipped.hnsw_m)
    parser.add_argument("--ef-construction", type=int, default=shipped.hnsw_ef_construction)
    parser.add_argument("--ef-search", type=int, default=shipped.hnsw_ef_search)
    parser.add_argument("--nprobe", type=int, default=shipped.ivf_nprobe)
    parser.add_argument("--refine-factor", type=int, default=shipped.refine_factor)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="print only (for quick runs)")
    args = parser.parse_args(argv)
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown --kinds {sorted(unknown)}; choose from {KINDS}")
    args.argv = list(argv or [])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    metrics, section = run(args)
    print(f"benchmark took {time.perf_counter() - start:.0f} s")
    print(section)
    if not args.no_save:
        dataset = f"generated-{_short(args.items)}-dim{DIM}"
        write_result("retrieval_latency", metrics, _command(args), dataset)
        update_results_md("retrieval_latency", section)


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1_000}k"


if __name__ == "__main__":
    main(sys.argv[1:])
