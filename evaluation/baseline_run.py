"""`marquee eval baselines`: every baseline tuned and tested on one LOO-full split."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
from rich.progress import Progress

from catalog.paths import HasDataSources
from catalog.splits import Split, loo_full
from catalog.tables import load_catalog
from evaluation.baselines.registry import BASELINES
from evaluation.report import Report
from evaluation.runner import ModelResult, genre_matrix, tune_and_test


def check_baselines(models: Sequence[str] | None) -> list[str]:
    chosen = list(models) if models else list(BASELINES)
    unknown = [m for m in chosen if m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    return chosen


def tune_baselines(
    split: Split, features: sp.csr_matrix, chosen: Sequence[str], progress: Progress
) -> list[ModelResult]:
    results = []
    total = sum(len(BASELINES[m][1]) for m in chosen)
    task = progress.add_task("tuning baselines on validation", total=total)
    for name in chosen:
        factory, grid = BASELINES[name]
        progress.update(task, description=f"tuning {name}")
        results.append(
            tune_and_test(factory, grid, split, features, on_config=lambda: progress.advance(task))
        )
    progress.remove_task(task)
    return results


def run_baselines(
    dataset: str,
    settings: HasDataSources,
    models: Sequence[str] | None = None,
    command: str = "",
) -> Report:
    chosen = check_baselines(models)
    catalog = load_catalog(dataset, settings)
    split = loo_full(catalog.events, dataset)
    features = genre_matrix(catalog.items, split.item_ids)
    with Progress(transient=True) as progress:
        results = tune_baselines(split, features, chosen, progress)
    return Report("Baselines", dataset, split.stats, results, command)
