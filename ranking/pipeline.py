"""Train the production ranker on real retrieval outcomes and save it beside retrieval.

Data: every user's latest event is held out; sources are fitted on the events
before it (the retrieval bundle's two-tower model was trained on exactly those),
each user's merged pool is built from their earlier history, and the held-out
item is the positive among the retrieved candidates. 20% of users early-stop the
ranker and choose the blend weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from catalog.paths import HasTrainingSettings
from catalog.splits import loo_full
from catalog.tables import Catalog
from ranking.features import ItemTable
from ranking.ranker import BlendWeights, MultiTaskNet, Ranker, RankerConfig
from ranking.training import FittedRanker, fit_ranker, item_table
from retrieval.bundle import RetrievalBundle
from retrieval.offline_pools import build_sources, contexts, run_sources, stage_pools, stage_targets
from retrieval.pipeline import text_vectors
from retrieval.quotas import serving_quotas


def train_ranker_bundle(
    catalog: Catalog, settings: HasTrainingSettings, retrieval: RetrievalBundle
) -> tuple[FittedRanker, ItemTable]:
    split = loo_full(catalog.events, catalog.name, k=1)
    stage = split.stage("test")  # history = all but the latest event; target = latest
    text = text_vectors(catalog, settings)
    cap = retrieval.meta.get("context_gap_cap")
    sources = build_sources(stage, split, catalog, text, retrieval.model, cap)
    ctxs = contexts(stage, split, catalog.users)
    run = run_sources(sources, ctxs)
    lookup = catalog.events.set_index(["user_id", "item_id"])["rating"]
    targets = stage_targets(stage, split)
    users = split.user_ids[stage.users]
    ratings = lookup.loc[list(zip(users, targets, strict=True))].to_numpy(dtype=np.float32)
    pools = stage_pools(run.lists, ctxs, targets, ratings, serving_quotas())
    items = item_table(catalog, split, stage, text)
    return fit_ranker(pools, items, RankerConfig(seed=settings.seed), settings.seed), items


def save_ranker(fitted: FittedRanker, items: ItemTable, folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(fitted.net.state_dict(), folder / "net.pt")
    np.savez(
        folder / "items.npz",
        item_ids=items.item_ids,
        genres=items.genres,
        years=items.years,
        log_popularity=items.log_popularity,
        text=items.text,
    )
    payload = {
        **meta,
        "blend": asdict(fitted.blend),
        "best_epoch": fitted.best_epoch,
        "train_seconds": round(fitted.seconds, 1),
        "holdout_ndcg@10": fitted.hold_ndcg10,
        "n_features": int(fitted.net.mean.shape[0]),
        "config": RankerConfig().to_dict(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "meta.json").write_text(json.dumps(payload, indent=2, default=str))


def load_ranker(folder: Path) -> Ranker:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = np.load(folder / "items.npz")
    items = ItemTable(
        arrays["item_ids"],
        arrays["genres"],
        arrays["years"],
        arrays["log_popularity"],
        arrays["text"],
    )
    config = RankerConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
    )
    net = MultiTaskNet(meta["n_features"], config)
    state = torch.load(folder / "net.pt", weights_only=True)
    for bound in ("lo", "hi"):  # bundles trained before feature ranges were kept
        state.setdefault(bound, getattr(net, bound))
    net.load_state_dict(state)
    return Ranker(net, items, BlendWeights(**meta["blend"]))


__all__ = ["load_ranker", "save_ranker", "train_ranker_bundle"]
