"""The feed and the baselines on the global temporal split, per slice.

Protocol (stated again in the report section):

- Cut: `catalog.splits.temporal_split`'s cutoff, the time before which
  (1 - test_fraction) of all events happened. Events before it are the past, the
  rest the future. The item index spans every item with an event (past or future);
  items first seen in the future are in the catalog with no events.
- Test requests: one per user with a future event that is not a re-watch of their
  past, at request time = the cutoff, with the user's whole past as history. The
  targets are *all* of the user's future items (Recall@10 = share of them on the
  first page, NDCG@10 with the ideal DCG of min(|targets|, 10)).
- Slices: warm users (some past events) and new users (none) partition the test
  users; new items is the subset of targets first seen at or after the cutoff,
  evaluated over the test users who have one, on the same ranked lists.
- Fitting: every source, the two-tower model, the ranker and the baselines see past
  events only. The ranker and the two-tower's early stopping use an inner stage
  built from the past alone ("valid": each past user's last past event held out
  from the sources' training events, requested at that event's time), exactly as
  the LOO report trains on its validation stage. Baseline hyperparameters are
  chosen on the same inner stage, then the models are refitted on the whole past.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from catalog.metrics import list_metrics, mask_history, top_k
from catalog.splits import EvalStage, Interactions, Split, temporal_split
from catalog.tables import Catalog
from evaluation.baselines.ease import EASE
from evaluation.baselines.itemknn import ItemKNN
from evaluation.baselines.popularity import MostPopular
from evaluation.ranking_eval import feed_pages
from evaluation.runner import evaluate
from ranking.ranker import RankerConfig
from ranking.training import fit_ranker, item_table, labelled, request_scores
from retrieval.offline_pools import (
    StagePools,
    build_sources,
    contexts,
    run_sources,
    stage_pools,
    stage_targets,
)
from retrieval.quotas import QUOTA_PRESETS, SERVING_PRESET

SLICES = ("all", "warm_users", "new_users", "new_items")
K = 10

# Kept small: EASE inverts an items x items matrix per grid point on the full catalog.
TEMPORAL_BASELINES: dict[str, tuple[Any, list[dict[str, Any]]]] = {
    "MostPopular": (MostPopular, [{}]),
    "ItemKNN": (ItemKNN, [{"neighbors": n} for n in (20, 100, 500)]),
    "EASE": (EASE, [{"l2": lam} for lam in (100.0, 500.0, 2000.0)]),
}
# Models whose scores for a user without history carry no signal (all zero).
NEEDS_HISTORY = {"ItemKNN", "EASE"}


@dataclass(frozen=True)
class TemporalData:
    split: Split  # stages "valid" (inner, past only) and "test" (at the cutoff)
    cutoff: int
    relevant: dict[str, sp.csr_matrix]  # slice -> (users x items) targets of that slice
    slice_users: dict[str, np.ndarray]  # slice -> user indices evaluated in that slice
    new_items: np.ndarray  # item indices first seen at or after the cutoff
    first_target: np.ndarray  # per test user (stage order): raw id of the earliest target
    first_rating: np.ndarray
    sampled: bool = False


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def _minus(mat: sp.csr_matrix, history: sp.csr_matrix) -> sp.csr_matrix:
    out = (mat - mat.multiply(history)).tocsr()
    out.eliminate_zeros()
    return out


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["user_idx", "item_idx", "rating", "timestamp"]].reset_index(drop=True)


def _rows(mat: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(mat.indptr) > 0)


def _sample(users: np.ndarray, max_users: int, rng: np.random.Generator) -> np.ndarray:
    if max_users <= 0 or len(users) <= max_users:
        return users
    return np.sort(rng.choice(users, size=max_users, replace=False))


def _inner_stage(
    past: pd.DataFrame, shape: tuple[int, int], max_users: int, rng: np.random.Generator
) -> EvalStage:
    """Past only: each past user's last past event (when they have two or more) held out."""
    from_end = past.groupby("user_idx").cumcount(ascending=False).to_numpy()
    size = past.groupby("user_idx")["item_idx"].transform("size").to_numpy()
    held_mask = (from_end == 0) & (size >= 2)
    held, inner = past.loc[held_mask], past.loc[~held_mask]
    inner_train = Interactions(_columns(inner), *shape)
    inner_history = inner_train.matrix()
    valid_targets = _minus(
        _csr(held["user_idx"].to_numpy(), held["item_idx"].to_numpy(), shape), inner_history
    )
    valid_times = np.zeros(shape[0], dtype=np.int64)
    valid_times[held["user_idx"].to_numpy()] = held["timestamp"].to_numpy()
    return EvalStage(
        "valid",
        inner_train,
        inner_history,
        valid_targets,
        _sample(_rows(valid_targets), max_users, rng),
        valid_times,
    )


def _first_targets(
    future: pd.DataFrame, targets: sp.csr_matrix, test_users: np.ndarray
) -> pd.DataFrame:
    """Each test user's earliest target event: the ranker's label input only."""
    fu, fi = future["user_idx"].to_numpy(), future["item_idx"].to_numpy()
    in_target = np.asarray(targets[fu, fi]).ravel() > 0
    return (
        future.loc[in_target]
        .sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
        .groupby("user_idx")
        .head(1)
        .set_index("user_idx")
        .loc[test_users]
    )


def _test_stage(
    past: pd.DataFrame,
    future: pd.DataFrame,
    shape: tuple[int, int],
    cutoff: int,
    max_users: int,
    rng: np.random.Generator,
) -> tuple[EvalStage, dict[str, sp.csr_matrix], dict[str, np.ndarray], np.ndarray]:
    """Requests at the cut; targets: every future item that is not a re-watch of the past."""
    train = Interactions(_columns(past), *shape)
    history = train.matrix()
    fu, fi = future["user_idx"].to_numpy(), future["item_idx"].to_numpy()
    known_item = np.zeros(shape[1], dtype=bool)
    known_item[past["item_idx"].unique()] = True
    known_user = np.zeros(shape[0], dtype=bool)
    known_user[past["user_idx"].unique()] = True
    targets = _minus(_csr(fu, fi, shape), history)
    test_users = _sample(_rows(targets), max_users, rng)
    keep = np.zeros(shape[0], dtype=bool)
    keep[test_users] = True
    targets = sp.diags(keep.astype(np.float32)) @ targets
    targets = sp.csr_matrix(targets)
    targets.eliminate_zeros()
    new_item_cols = np.flatnonzero(~known_item)
    new_items_rel = sp.csr_matrix(targets @ sp.diags((~known_item).astype(np.float32)))
    new_items_rel.eliminate_zeros()
    relevant = {
        "all": targets,
        "warm_users": targets,
        "new_users": targets,
        "new_items": new_items_rel,
    }
    slice_users = {
        "all": test_users,
        "warm_users": test_users[known_user[test_users]],
        "new_users": test_users[~known_user[test_users]],
        "new_items": _rows(new_items_rel),
    }
    test = EvalStage(
        "test", train, history, targets, test_users, np.full(shape[0], cutoff, dtype=np.int64)
    )

    return test, relevant, slice_users, new_item_cols


def temporal_data(
    events: pd.DataFrame,
    dataset: str,
    test_fraction: float = 0.2,
    max_users: int = 0,
    seed: int = 0,
) -> TemporalData:
    """The temporal split with an inner past-only stage, over the full item index.

    `max_users` > 0 subsamples the test users and, separately, the inner stage's
    requests (uniformly, with `seed`); 0 keeps everyone.
    """
    cutoff = int(temporal_split(events, dataset, test_fraction).stats["cutoff"])
    ev = events[["user_id", "item_id", "rating", "timestamp"]].copy()
    user_ids = np.sort(ev["user_id"].unique())
    item_ids = np.sort(ev["item_id"].unique())
    ev["user_idx"] = np.searchsorted(user_ids, ev["user_id"].to_numpy())
    ev["item_idx"] = np.searchsorted(item_ids, ev["item_id"].to_numpy())
    ev = ev.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    shape = (len(user_ids), len(item_ids))
    past, future = ev.loc[ev["timestamp"] < cutoff], ev.loc[ev["timestamp"] >= cutoff]
    rng = np.random.default_rng(seed)

    valid = _inner_stage(past, shape, max_users, rng)

    test, relevant, slice_users, new_item_cols = _test_stage(
        past, future, shape, cutoff, max_users, rng
    )
    targets, test_users = test.targets, test.users
    first = _first_targets(future, targets, test_users)
    pct = round(test_fraction * 100)
    name = f"temporal-{pct}" + (f"-u{max_users}-s{seed}" if max_users > 0 else "")
    stats = {
        "protocol": f"temporal, last {test_fraction:.0%} of events (see the section)",
        "cutoff": cutoff,
        "users": shape[0],
        "items": shape[1],
        "train_interactions": len(past),
        "test_users": len(test_users),
        "test_interactions": int(targets.nnz),
        "new_items": len(new_item_cols),
        "interactions": len(events),
        "raw_users": shape[0],
        "raw_items": shape[1],
        "raw_interactions": len(events),
    }
    split = Split(name, dataset, user_ids, item_ids, {"valid": valid, "test": test}, stats)
    return TemporalData(
        split,
        cutoff,
        relevant,
        slice_users,
        new_item_cols,
        item_ids[first["item_idx"].to_numpy()],
        first["rating"].to_numpy(dtype=np.float32),
        sampled=max_users > 0,
    )


@dataclass
class TemporalResult:
    data: TemporalData
    metrics: dict[str, dict[str, dict[str, float]]]  # model -> slice -> metric
    pool_recall: dict[str, float]  # slice -> share of targets in the merged pool
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    ranker_epochs: int = 0

    def users(self, name: str) -> int:
        return len(self.data.slice_users[name])

    def result_params(self, name: str) -> dict[str, Any]:
        return dict(self.params.get(name, {}))

    def markdown(self, lambda_: float) -> str:
        return temporal_markdown(self, lambda_)


def _stage_pools(
    stage: EvalStage,
    split: Split,
    catalog: Catalog,
    text: np.ndarray,
    model,
    targets: np.ndarray,
    ratings: np.ndarray,
    preset: str,
) -> StagePools:
    sources = build_sources(stage, split, catalog, text, model)
    ctxs = contexts(stage, split, catalog.users)
    run = run_sources(sources, ctxs)
    return stage_pools(run.lists, ctxs, targets, ratings, QUOTA_PRESETS[preset])


def _valid_ratings(catalog: Catalog, split: Split, stage: EvalStage) -> np.ndarray:
    lookup = catalog.events.groupby(["user_id", "item_id"])["rating"].last()
    keys = list(zip(split.user_ids[stage.users], stage_targets(stage, split), strict=True))
    return lookup.loc[keys].to_numpy(dtype=np.float32)


def _slice_metrics(
    top: np.ndarray, data: TemporalData, position: dict[int, int]
) -> dict[str, dict[str, float]]:
    """Recall/NDCG@10 of lists (rows in test-stage order; column n_items = padding)."""
    out = {}
    n_items = len(data.split.item_ids)
    for name in SLICES:
        users = data.slice_users[name]
        if len(users) == 0:
            out[name] = {"recall@10": float("nan"), "ndcg@10": float("nan")}
            continue
        rel = sp.hstack([data.relevant[name][users], sp.csr_matrix((len(users), 1))]).tocsr()
        rows = top[[position[int(u)] for u in users]]
        m = list_metrics(rows, rel, ks=(K,))
        out[name] = {"recall@10": m["recall@10"], "ndcg@10": m["ndcg@10"]}
    assert top.max() <= n_items
    return out


def _pad(lists: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    top = np.full((len(lists), K), n_items, dtype=np.int64)
    for i, row in enumerate(lists):
        top[i, : min(K, len(row))] = list(row)[:K]
    return top


def _baseline_lists(
    name: str, data: TemporalData, grid_override: dict[str, list[dict[str, Any]]] | None
) -> tuple[np.ndarray, dict[str, Any]]:
    factory, grid = TEMPORAL_BASELINES[name]
    grid = (grid_override or {}).get(name, grid)
    valid, test = data.split.stage("valid"), data.split.stage("test")
    best = max(
        grid,
        key=lambda params: _valid_ndcg(factory(**params), valid),
    )
    model = factory(**best)
    model.fit(test.train)
    tops = []
    for start in range(0, len(test.users), 512):
        users = test.users[start : start + 512]
        tops.append(top_k(mask_history(model.score(users), test.history[users]), K))
    return np.vstack(tops), best


def _valid_ndcg(model, stage: EvalStage) -> float:
    model.fit(stage.train)
    return evaluate(model, stage, ks=(K,))["ndcg@10"]


def run_temporal(
    catalog: Catalog,
    text: np.ndarray,
    data: TemporalData,
    two_tower_model,
    lambda_: float,
    baselines: Sequence[str] = tuple(TEMPORAL_BASELINES),
    baseline_grids: dict[str, list[dict[str, Any]]] | None = None,
    ranker_config: RankerConfig | None = None,
    preset: str = SERVING_PRESET,
    seed: int = 42,
) -> TemporalResult:
    """Feed (pools -> ranker -> rules), ranker alone and baselines, per slice."""
    from ranking.rules import ItemMeta

    split = data.split
    valid, test = split.stage("valid"), split.stage("test")
    valid_pools = _stage_pools(
        valid,
        split,
        catalog,
        text,
        two_tower_model,
        stage_targets(valid, split),
        _valid_ratings(catalog, split, valid),
        preset,
    )
    fitted = fit_ranker(valid_pools, item_table(catalog, split, valid, text), ranker_config, seed)
    test_pools = _stage_pools(
        test, split, catalog, text, two_tower_model, data.first_target, data.first_rating, preset
    )
    requests = list(range(len(test_pools.ctxs)))
    x, _, groups = labelled(test_pools, item_table(catalog, split, test, text), requests)
    scores, _ = request_scores(fitted.net, x, groups, requests, fitted.blend)
    position = {int(u): i for i, u in enumerate(test.users)}
    index_of = {int(item): i for i, item in enumerate(split.item_ids)}
    n_items = len(split.item_ids)

    ranker_lists = [
        [index_of[test_pools.pools[r][i].item_id] for i in np.argsort(-s, kind="stable")[:K]]
        for r, s in zip(requests, scores, strict=True)
    ]
    pages = feed_pages(scores, test_pools, requests, ItemMeta.from_frame(catalog.items), lambda_)
    feed_lists = [[index_of[i] for i in page] for page in pages]
    metrics = {}
    params: dict[str, dict[str, Any]] = {}
    for name in baselines:
        top, params[name] = _baseline_lists(name, data, baseline_grids)
        metrics[name] = _slice_metrics(top, data, position)
        if name in NEEDS_HISTORY:
            metrics[name]["new_users"] = {"recall@10": float("nan"), "ndcg@10": float("nan")}
    metrics["Ranker (no rules)"] = _slice_metrics(_pad(ranker_lists, n_items), data, position)
    metrics["Feed (ranker + rules)"] = _slice_metrics(_pad(feed_lists, n_items), data, position)
    params["Feed (ranker + rules)"] = {"lambda": lambda_, "blend": str(fitted.blend)}
    pool_lists = [[index_of[c.item_id] for c in pool] for pool in test_pools.pools]
    return TemporalResult(
        data, metrics, _pool_recall(pool_lists, data, position), params, fitted.best_epoch
    )


def _pool_recall(
    pools: list[list[int]], data: TemporalData, position: dict[int, int]
) -> dict[str, float]:
    out = {}
    for name in SLICES:
        users = data.slice_users[name]
        shares = []
        for u in users:
            targets = data.relevant[name][int(u)].indices
            shares.append(np.isin(targets, pools[position[int(u)]]).mean())
        out[name] = float(np.mean(shares)) if shares else float("nan")
    return out


def _fmt(m: dict[str, float]) -> str:
    if np.isnan(m["ndcg@10"]):
        return "n/a | n/a"
    return f"{m['ndcg@10']:.4f} | {m['recall@10']:.4f}"


def temporal_markdown(result: TemporalResult, lambda_: float) -> str:
    data = result.data
    stats = data.split.stats
    header = " | ".join(f"{s} NDCG@10 | {s} Recall@10" for s in SLICES)
    rows = [f"| model | {header} |", "|---|" + "---|" * (2 * len(SLICES))]
    counts = [c for s in SLICES for c in (str(result.users(s)), "")]
    pools = [c for s in SLICES for c in ("", f"{result.pool_recall[s]:.4f}")]
    rows.append("| users in slice | " + " | ".join(counts) + " |")
    for name, by_slice in result.metrics.items():
        rows.append(f"| {name} | " + " | ".join(_fmt(by_slice[s]) for s in SLICES) + " |")
    rows.append("| merged pool Recall@500 | " + " | ".join(pools) + " |")
    cutoff = pd.Timestamp(data.cutoff, unit="s").date().isoformat()
    sampled = (
        f" Test users and inner-stage requests subsampled to {len(data.slice_users['all'])} "
        "(uniformly at random)."
        if data.sampled
        else ""
    )
    tuned = "; ".join(f"{k} {v}" for k, v in result.params.items() if v and k in TEMPORAL_BASELINES)
    protocol = (
        f"Cut at {cutoff} (`temporal_split`, last 20% of events by time are the future): "
        f"{stats['train_interactions']} past events, {stats['test_users']} test users, "
        f"{stats['test_interactions']} target events, {stats['new_items']} items first seen "
        "after the cut. One request per test user at request time = the cut, history = the "
        "user's past; targets = all of the user's future items except re-watches "
        "(Recall@10 over the set, NDCG@10 with ideal DCG of min(|targets|, 10)). Slices: "
        "warm users (past events) and new users (none) partition the test users; new items "
        "= the targets first seen after the cut, for the users who have one, on the same "
        "lists. Sources, two-tower, ranker and baselines are fitted on past events only: "
        "the ranker trains (and the two-tower early-stops) on an inner past-only stage "
        "(each past user's last past event held out from the sources' events, requested at "
        "its own time), like the LOO report's validation stage; baselines are tuned on the "
        f"same inner stage and refitted on the whole past ({tuned}). Feed = ranker + the "
        f"serving rules without exploration (ranking/rules/feed.py: filters, freshness at "
        f"the split time, MMR lambda {lambda_}); ranker epochs {result.ranker_epochs}. ItemKNN "
        "and EASE have no signal for a user without history: their new-user cells are n/a, "
        "and their all / new-items cells include those users' arbitrary (all-zero) lists." + sampled
    )
    return "\n".join(rows) + "\n\n" + protocol


def flat_metrics(result: TemporalResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, by_slice in result.metrics.items():
        for s, m in by_slice.items():
            for metric, value in m.items():
                out[f"temporal.{name}.{s}.{metric}"] = value
    for s in SLICES:
        out[f"temporal.users.{s}"] = float(result.users(s))
        out[f"temporal.pool.{s}.recall@500"] = result.pool_recall[s]
    return out


__all__ = [
    "SLICES",
    "TemporalData",
    "TemporalResult",
    "flat_metrics",
    "run_temporal",
    "temporal_data",
    "temporal_markdown",
]
