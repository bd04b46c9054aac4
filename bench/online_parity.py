"""Online parity: the feed measured through the running product against the same funnel
measured offline, on the same test users.

Run from the repository root (Redis on 127.0.0.1:6379):
    marquee bench online_parity [--users 200] [--dataset ml-latest-small]
Writes bench/results/online_parity.json, bench/results/online_parity.png and the
online_parity section of bench/RESULTS.md.

Protocol (evaluation/parity.py): every user's latest event is held out (LOO-full). A
random sample of users is taken out of the catalog altogether; a bundle (two-tower and
ranker) is trained on what remains, so no model or source ever saw a held-out event or
a test user. Then, in one run:

- offline: the serving `Funnel` object, in this process, builds each test user's page
  from their history at the held-out event's time (the data clock);
- served: `marquee serve` with the real Redis; each test user's history is replayed
  through `POST /v1/events` (the nearline worker builds the state), then
  `GET /v1/users/{id}/feed?at=<held-out time>` is requested over HTTP;
- served on the wall clock: a second server with `MARQUEE_CLOCK=wall` and a fresh
  replay, asked for the page now, as a historical catalog served on today's date would.

NDCG@10 and Recall@10 of the held-out item; the served-minus-offline difference with a
paired bootstrap 95% CI over users. The offline figure is also given with exploration
off, which is what the exploration slot costs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import redis

from app.security.keys import entry_for, new_key
from evaluation.bench_io import update_results_md, write_result
from evaluation.parity import ParityData, TestUser, ndcg_at, paired_bootstrap, parity_data
from evaluation.served import free_port, start_server

COMMAND = "marquee bench online_parity"
# The replay writes historical times: a key of this run with the `backfill` scope.
BENCH_KEY = new_key()
HEADERS = {"X-API-Key": BENCH_KEY, "Content-Type": "application/json"}
PAGE = 10
MISS = 10**6
BATCH = 500  # events per POST (the API's maximum)


def call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    """One API call; a 503 is retried as a client would (events carry idempotency keys)."""
    for attempt in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(method, path, body=json.dumps(body) if body else None, headers=HEADERS)
        response = conn.getresponse()
        data = json.loads(response.read())
        if response.status == 503 and attempt < 3:
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data}")
        return data
    raise AssertionError("unreachable")


# the bundle ---------------------------------------------------------------------------


def prepare(data: ParityData, full, full_settings, workdir: Path, max_epochs: int):
    """Settings of the parity artifacts folder, with its catalog saved and bundle trained
    (reused when an earlier run trained one for the same catalog version)."""
    from app.settings import Settings
    from catalog.tables import catalog_dir
    from ranking.pipeline import save_ranker, train_ranker_bundle
    from retrieval.pipeline import (
        latest_bundle,
        save_bundle,
        text_vectors,
        train_retrieval_bundle,
    )
    from retrieval.text_encoder import cache_file
    from retrieval.training import TrainConfig

    settings = Settings(**{**full_settings.model_dump(), "artifacts_dir": workdir / "artifacts"})
    cat = data.catalog
    folder = catalog_dir(cat.name, settings)
    manifest = folder / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != cat.version:
        cat.save(folder)
    text_vectors(full, full_settings)  # same items, same text: encoded once, copied
    source = cache_file(Path(full_settings.artifacts_dir) / "embeddings" / full.name, full.version)
    target = cache_file(Path(settings.artifacts_dir) / "embeddings" / cat.name, cat.version)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    bundle = latest_bundle(settings, cat.name)
    if bundle is not None and (bundle / "ranking" / "meta.json").is_file():
        meta = json.loads((bundle / "ranking" / "meta.json").read_text())
        if meta.get("catalog_version") == cat.version:
            print(f"reusing bundle {bundle.name}", flush=True)
            return settings
    started = time.perf_counter()
    print("training the two-tower model on the parity catalog ...", flush=True)
    config = TrainConfig(max_epochs=max_epochs, seed=settings.seed)

    def progress(epoch: int, loss: float, metrics: dict[str, float]) -> None:
        print(
            f"  epoch {epoch} loss {loss:.3f} valid recall@10 {metrics['recall@10']:.4f}",
            flush=True,
        )

    retrieval = train_retrieval_bundle(cat, settings, train_config=config, progress=progress)
    bundle = save_bundle(retrieval, settings)
    print(f"training the ranker ({time.perf_counter() - started:.0f}s so far) ...", flush=True)
    fitted, items = train_ranker_bundle(cat, settings, retrieval)
    meta = {"dataset": cat.name, "catalog_version": cat.version}
    save_ranker(fitted, items, bundle / "ranking", meta)
    print(f"bundle {bundle.name} trained in {time.perf_counter() - started:.0f}s", flush=True)
    return settings


# offline: the serving funnel object, in this process ------------------------------------


def offline_funnel(settings, data: ParityData):
    """The serving `Funnel` over the parity bundle, as `marquee serve` builds it."""
    from app.funnel import Funnel
    from retrieval.pipeline import latest_bundle

    # Offline waits for every source: the served run's deadline misses are counted apart.
    patient = settings.model_copy(update={"source_timeout_s": 120.0})
    return Funnel.build(latest_bundle(settings, data.catalog.name), data.catalog, patient)


def offline_pages(
    settings, data: ParityData, explore: bool, funnel=None, page: int = PAGE
) -> list[list[int]]:
    """Each test user's page from the serving `Funnel` (built unless given), its state
    composed exactly as the service composes replayed events (app.user_state)."""
    from app.experiments import DEFAULT_EXPERIMENTS, Assigner
    from app.funnel import FeedQuery
    from app.user_state import catalog_demographics, compose_state
    from features.events import EventType
    from features.nearline import RecentEvent

    funnel = funnel or offline_funnel(settings, data)
    assigner = Assigner(DEFAULT_EXPERIMENTS)
    demographics = catalog_demographics(data.catalog)
    pages = []
    for user in data.users:
        recent = [
            RecentEvent(int(i), EventType.RATING, int(t), float(r))
            for i, r, t in user.history[["item_id", "rating", "timestamp"]].itertuples(index=False)
        ]
        state = compose_state(user.user_id, None, recent, None, demographics.get(user.user_id))
        variant = assigner.assign(user.user_id)
        result = funnel.feed(state, FeedQuery(k=page, explore=explore), variant, user.at)
        pages.append([it.item_id for it in result.items])
    return pages


# served: marquee serve, the event API and the feed API ----------------------------------


def replay(port: int, users: list[TestUser], run: str) -> int:
    """Every test user's history as rating events, in time order, over HTTP."""
    events = [
        {
            "event_id": f"parity-{run}-{user.user_id}-{int(item)}",
            "type": "rating",
            "user_id": user.user_id,
            "item_id": int(item),
            "rating": float(rating),
            "timestamp": int(ts),
        }
        for user in users
        for item, rating, ts in user.history[["item_id", "rating", "timestamp"]].itertuples(
            index=False
        )
    ]
    for start in range(0, len(events), BATCH):
        call(port, "POST", "/v1/events", {"events": events[start : start + BATCH]})
    return len(events)


def wait_applied(client: redis.Redis, prefix: str, timeout_s: float = 300.0) -> None:
    """Until the nearline consumer group has read and acknowledged every event."""
    from features.events import stream_key

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        groups = client.xinfo_groups(stream_key(prefix))
        if groups and all(g["lag"] == 0 and g["pending"] == 0 for g in groups):
            return
        time.sleep(0.2)
    raise SystemExit("the nearline worker did not apply the replayed events in time")


def served_pages(
    data: ParityData, settings, redis_url: str, clock: str, at_data_time: bool
) -> tuple[list[list[int]], dict[str, float]]:
    """Start a server on `clock`, replay the test users, request their pages over HTTP."""
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-parity-{run}"
    env = {
        "MARQUEE_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "MARQUEE_DATASET": data.catalog.name,
        "MARQUEE_CLOCK": clock,
        "MARQUEE_LLM_MODEL": "off",
        "MARQUEE_API_KEYS": entry_for(BENCH_KEY, ["read", "events", "backfill"]),
        "MARQUEE_RATE_EVENTS": "",  # a replay, not an abuse: no event budget
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    port = free_port()
    client = redis.Redis.from_url(redis_url)
    proc = start_server(port, prefix, 1, redis_url)
    try:
        started = time.perf_counter()
        n_events = replay(port, data.users, run)
        wait_applied(client, prefix)
        replay_s = time.perf_counter() - started
        pages, latencies = [], []
        for user in data.users:
            query = f"/v1/users/{user.user_id}/feed?k={PAGE}"
            if at_data_time:
                query += f"&at={user.at}"
            t0 = time.perf_counter()
            body = call(port, "GET", query)
            latencies.append(time.perf_counter() - t0)
            pages.append([it["item_id"] for it in body["items"]])
        stats = {
            "source_misses": source_misses(port),
            "events": n_events,
            "replay_s": replay_s,
            "feed_p50_ms": float(np.median(latencies) * 1e3),
            "served_at_example": body["served_at"],
            "clock": body["clock"],
        }
        return pages, stats
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def source_misses(port: int) -> int:
    """Candidate sources the server left out of a page (deadline or error), from /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    sources = ("two_tower", "covisit", "content", "trending", "popularity")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("marquee_errors_total{"):
            labels, value = line.rsplit(" ", 1)
            if any(f'component="{name}"' in labels for name in sources):
                total += float(value)
    return int(total)


# figures ------------------------------------------------------------------------------


def figures(pages: list[list[int]], users: list[TestUser]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user NDCG@10 and Recall@10 of the held-out item on each page."""
    ranks = np.array(
        [p.index(u.target) if u.target in p else MISS for p, u in zip(pages, users, strict=True)]
    )
    return ndcg_at(ranks, PAGE), (ranks < PAGE).astype(float)


def report(results: dict[str, list[list[int]]], data: ParityData, stats: dict) -> dict:
    users = data.users
    per_user = {name: figures(pages, users) for name, pages in results.items()}
    metrics: dict[str, float | int] = {
        "users": len(users),
        "page": PAGE,
        "source_timeout_ms": stats["timeout_s"] * 1e3,
    }
    for name, (ndcg, recall) in per_user.items():
        metrics[f"{name}_ndcg@10"] = round(float(ndcg.mean()), 4)
        metrics[f"{name}_recall@10"] = round(float(recall.mean()), 4)
    off = per_user["offline"][0]
    for name in ("served", "served_wall"):
        diff, lo, hi = paired_bootstrap(per_user[name][0], off)
        metrics[f"{name}_minus_offline_ndcg@10"] = round(diff, 4)
        metrics[f"{name}_minus_offline_ci_lo"] = round(lo, 4)
        metrics[f"{name}_minus_offline_ci_hi"] = round(hi, 4)
        same = [a == b for a, b in zip(results[name], results["offline"], strict=True)]
        metrics[f"{name}_identical_pages"] = round(float(np.mean(same)), 4)
    # The nearline keeps each user's last RECENT_N engagements: longer replayed histories
    # are served truncated (the batch features would hold the rest for a catalog user).
    from features.nearline import RECENT_N

    within = np.array([len(u.history) <= RECENT_N for u in users])
    same = np.array([a == b for a, b in zip(results["served"], results["offline"], strict=True)])
    metrics["nearline_window"] = RECENT_N
    metrics["users_beyond_window"] = int((~within).sum())
    metrics["identical_pages_within_window"] = round(float(same[within].mean()), 4)
    base = metrics["offline_ndcg@10"]
    metrics["served_over_offline"] = round(metrics["served_ndcg@10"] / base, 4) if base else 0.0
    metrics["replayed_events"] = int(stats["served"]["events"])
    metrics["replay_s"] = round(stats["served"]["replay_s"], 1)
    metrics["feed_p50_ms"] = round(stats["served"]["feed_p50_ms"], 1)
    metrics["served_source_misses"] = stats["served"]["source_misses"]
    metrics["served_wall_source_misses"] = stats["served_wall"]["source_misses"]
    return metrics


def section(m: dict, dataset: str) -> str:
    def row(label: str, key: str) -> str:
        return f"| {label} | {m[key + '_ndcg@10']:.4f} | {m[key + '_recall@10']:.4f} |"

    def diff(key: str) -> str:
        return (
            f"{m[key + '_minus_offline_ndcg@10']:+.4f} (95% CI "
            f"{m[key + '_minus_offline_ci_lo']:+.4f} .. {m[key + '_minus_offline_ci_hi']:+.4f})"
        )

    return "\n".join(
        [
            "## Online parity: the served feed against the same funnel offline",
            "",
            f"`{COMMAND} --users {m['users']}` on {dataset}. Protocol: LOO-full; every "
            f"user's latest event held out; {m['users']} random users taken out of the "
            "catalog, the bundle trained on the rest, the test users' histories replayed "
            f"through `POST /v1/events` ({m['replayed_events']} events, "
            f"{m['replay_s']} s until the nearline worker had applied them), pages of "
            f"{m['page']} requested over HTTP from `marquee serve` with the real Redis.",
            "",
            "| feed | NDCG@10 | Recall@10 |",
            "|---|---|---|",
            row("offline: serving funnel in-process, data time", "offline"),
            row("offline, exploration off", "offline_noexplore"),
            row("served over HTTP, data clock (`at` = held-out time)", "served"),
            row("served over HTTP, wall clock (page now)", "served_wall"),
            "",
            f"Served minus offline NDCG@10: {diff('served')}; served/offline = "
            f"{m['served_over_offline']:.3f}; identical pages for "
            f"{m['served_identical_pages']:.0%} of users ("
            f"{m['identical_pages_within_window']:.0%} of those whose history fits the "
            f"nearline's last {m['nearline_window']} events; {m['users_beyond_window']} "
            "users' histories are longer and are served truncated). Wall clock minus offline: "
            f"{diff('served_wall')} (identical pages {m['served_wall_identical_pages']:.0%}). "
            f"Median served feed latency {m['feed_p50_ms']} ms (one process). Candidate "
            f"sources the server dropped at its {m['source_timeout_ms']:.0f} ms deadline: "
            f"{m['served_source_misses']} (data clock), {m['served_wall_source_misses']} "
            "(wall clock); offline waits for every source.",
            "",
            "The wall-clock run asks for each page now, as a historical catalog served on "
            "today's date would: the freshness rule finds no recent release, exploration "
            "draws differ (they are seeded by request time), and the request-time features "
            "are clipped to their training ranges, so the models see a user back after a "
            "long break rather than inputs they never saw. Exploration off is what the "
            "exploration slot costs offline.",
        ]
    )


def plot(m: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["offline", "offline_noexplore", "served", "served_wall"]
    labels = ["offline", "offline\nno explore", "served\ndata clock", "served\nwall clock"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(labels, [m[f"{n}_ndcg@10"] for n in names], color=["#555", "#999", "#2a7", "#c73"])
    ax.set_ylabel("NDCG@10")
    ax.set_title(f"Feed NDCG@10, {m['users']} test users (LOO-full)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parity_arguments(parser, users: int, dataset: str, max_epochs: int) -> None:
    """The options every parity-protocol benchmark takes (this one and feed_guard)."""
    parser.add_argument("--users", type=int, default=users, help="Test users (taken out).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=dataset)
    parser.add_argument("--bench-dir", type=Path, default=Path("bench"))
    parser.add_argument("--max-epochs", type=int, default=max_epochs, help="Two-tower epoch cap.")


def parity_inputs(args) -> tuple[ParityData, object]:
    """The test users and the settings of the parity bundle (trained unless reusable)."""
    from app.settings import get_settings
    from catalog.tables import load_catalog

    full_settings = get_settings()
    full = load_catalog(args.dataset, full_settings)
    data = parity_data(full, args.users, args.seed)
    return data, prepare(data, full, full_settings, args.workdir, args.max_epochs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parity_arguments(parser, users=200, dataset="ml-latest-small", max_epochs=60)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workdir", type=Path, default=Path("artifacts") / "parity")
    args = parser.parse_args(argv)
    data, settings = parity_inputs(args)
    print(f"offline pages of {len(data.users)} users ...", flush=True)
    results = {
        "offline": offline_pages(settings, data, explore=True),
        "offline_noexplore": offline_pages(settings, data, explore=False),
    }
    stats = {}
    print("served pages (data clock) ...", flush=True)
    results["served"], stats["served"] = served_pages(
        data, settings, args.redis_url, "auto", at_data_time=True
    )
    print("served pages (wall clock) ...", flush=True)
    results["served_wall"], stats["served_wall"] = served_pages(
        data, settings, args.redis_url, "wall", at_data_time=False
    )
    stats["timeout_s"] = settings.source_timeout_s
    metrics = report(results, data, stats)
    print(json.dumps(metrics, indent=2))
    write_result("online_parity", metrics, COMMAND, args.dataset, args.bench_dir)
    plot(metrics, args.bench_dir / "results" / "online_parity.png")
    update_results_md(
        "online_parity", section(metrics, args.dataset), args.bench_dir / "RESULTS.md"
    )


if __name__ == "__main__":
    sys.exit(main())
