"""Stage-by-stage data for LOO-full: trained retrieval, per-stage pools, ranker inputs.

Shared by the ranking report and its benchmark so both measure the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from catalog.paths import HasDataSources
from catalog.splits import Split, loo_full
from catalog.tables import Catalog, load_catalog
from evaluation.runner import genre_matrix
from ranking.features import ItemTable
from ranking.training import item_table
from retrieval.offline import cached_train_on_split
from retrieval.offline_pools import (
    StagePools,
    build_sources,
    contexts,
    run_sources,
    stage_pools,
    stage_targets,
)
from retrieval.pipeline import text_vectors
from retrieval.quotas import QUOTA_PRESETS, SERVING_PRESET
from retrieval.training import TrainResult


@dataclass
class StageData:
    catalog: Catalog
    split: Split
    text: np.ndarray
    genres: object
    two_tower: TrainResult
    pools: dict[str, StagePools]
    items: dict[str, ItemTable]


def _ratings(catalog: Catalog, split: Split, stage_name: str) -> np.ndarray:
    stage = split.stage(stage_name)
    users = split.user_ids[stage.users]
    targets = stage_targets(stage, split)
    lookup = catalog.events.set_index(["user_id", "item_id"])["rating"]
    return lookup.loc[list(zip(users, targets, strict=True))].to_numpy(dtype=np.float32)


def prepare_stages(
    dataset: str,
    settings: HasDataSources,
    preset: str = SERVING_PRESET,
    progress: Progress | None = None,
) -> StageData:
    catalog = load_catalog(dataset, settings)
    split = loo_full(catalog.events, dataset)
    text = text_vectors(catalog, settings)
    cache = Path(settings.artifacts_dir) / "models"
    two_tower = cached_train_on_split(
        split, catalog.items, catalog.users, text, cache, catalog.version
    )
    pools, tables = {}, {}
    for name in ("valid", "test"):
        stage = split.stage(name)
        sources = build_sources(stage, split, catalog, text, two_tower.model)
        ctxs = contexts(stage, split, catalog.users)
        task = progress.add_task(f"retrieval ({name})", total=len(ctxs)) if progress else None
        run = run_sources(
            sources, ctxs, on_request=(lambda t=task: progress.advance(t)) if progress else None
        )
        if progress and task is not None:
            progress.remove_task(task)
        pools[name] = stage_pools(
            run.lists,
            ctxs,
            stage_targets(stage, split),
            _ratings(catalog, split, name),
            QUOTA_PRESETS[preset],
        )
        tables[name] = item_table(catalog, split, stage, text)
    return StageData(
        catalog, split, text, genre_matrix(catalog.items, split.item_ids), two_tower, pools, tables
    )


__all__ = ["StageData", "prepare_stages"]
