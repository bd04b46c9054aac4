"""Fit, tune on validation, refit, test: the one loop every model goes through.

Hyperparameters are chosen on the validation stage (fitted on train) and the
chosen configuration is refitted on train+validation before the test stage, so
no test information reaches a model or its tuning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from catalog.metrics import (
    DEFAULT_KS,
    auc_from_scores,
    catalog_coverage,
    intra_list_diversity,
    list_metrics,
    mask_history,
    metrics_from_ranks,
    novelty,
    target_ranks,
    top_k,
)
from catalog.splits import EvalStage, Split
from evaluation.baselines.base import Recommender

SELECTION_METRIC = "ndcg@10"
BEYOND_K = 10


def genre_matrix(items: pd.DataFrame, item_ids: np.ndarray) -> sp.csr_matrix:
    """Multi-hot genre vectors aligned with a split's item index (for diversity)."""
    genres_by_id = dict(zip(items["item_id"], items["genres"], strict=True))
    vocab = sorted({g for gs in items["genres"] for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    rows, cols = [], []
    for i, item in enumerate(item_ids):
        for g in genres_by_id.get(int(item), []):
            rows.append(i)
            cols.append(col[g])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(item_ids), len(vocab)))


def evaluate(
    model: Recommender,
    stage: EvalStage,
    item_features: sp.csr_matrix | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
) -> dict[str, float]:
    """Accuracy and beyond-accuracy metrics of a fitted model on one stage."""
    single_target = bool((np.diff(stage.targets.indptr)[stage.users] == 1).all())
    max_k = max(max(ks), BEYOND_K)
    tops, ranks, aucs = [], [], []
    for start in range(0, len(stage.users), batch_size):
        users = stage.users[start : start + batch_size]
        scores = mask_history(model.score(users), stage.history[users])
        tops.append(top_k(scores, max_k))
        if single_target:
            targets = stage.targets[users].indices
            ranks.append(target_ranks(scores, targets))
            aucs.append(auc_from_scores(scores, targets))
    top = np.vstack(tops)
    if single_target:
        out = metrics_from_ranks(np.concatenate(ranks), ks)
        out["auc"] = float(np.nanmean(np.concatenate(aucs)))
    else:
        out = list_metrics(top, stage.targets[stage.users], ks)
    popularity = np.asarray(stage.train.matrix().sum(axis=0)).ravel()
    head = top[:, :BEYOND_K]
    out[f"coverage@{BEYOND_K}"] = catalog_coverage(head, stage.train.n_items)
    out[f"novelty@{BEYOND_K}"] = novelty(head, popularity, stage.train.n_users)
    if item_features is not None:
        out[f"ild@{BEYOND_K}"] = intra_list_diversity(head, item_features)
    return out


@dataclass
class ModelResult:
    name: str
    params: dict[str, Any]
    valid: dict[str, float]
    test: dict[str, float]
    tuning: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: float = 0.0


def tune_and_test(
    factory: Callable[..., Recommender],
    grid: Sequence[dict[str, Any]],
    split: Split,
    item_features: sp.csr_matrix | None = None,
    on_config: Callable[[], None] | None = None,
) -> ModelResult:
    """Pick the grid point with the best validation NDCG@10, refit on train+valid, test."""
    valid_stage, test_stage = split.stage("valid"), split.stage("test")
    tuning: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], dict[str, float]] | None = None
    for params in grid:
        model = factory(**params)
        model.fit(valid_stage.train)
        metrics = evaluate(model, valid_stage, item_features)
        tuning.append({"params": params, SELECTION_METRIC: metrics[SELECTION_METRIC]})
        if best is None or metrics[SELECTION_METRIC] > best[0]:
            best = (metrics[SELECTION_METRIC], params, metrics)
        if on_config:
            on_config()
    assert best is not None, "empty grid"
    _, params, valid_metrics = best
    model = factory(**params)
    started = time.perf_counter()
    model.fit(test_stage.train)
    fit_seconds = time.perf_counter() - started
    test_metrics = evaluate(model, test_stage, item_features)
    return ModelResult(model.name, model.params(), valid_metrics, test_metrics, tuning, fit_seconds)
