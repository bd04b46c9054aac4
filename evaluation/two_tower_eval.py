"""The trained two-tower model as a row of the baselines' report.

Kept beside the evaluator rather than in `retrieval/`: scoring every user over
the full catalog with beyond-accuracy metrics is a report concern, not training.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from catalog.splits import Split
from evaluation.runner import ModelResult, evaluate
from retrieval.offline import TwoTowerScorer, demographics_matrix
from retrieval.training import TrainResult


def two_tower_result(
    result: TrainResult,
    split: Split,
    users: pd.DataFrame,
    item_features: Any = None,
) -> ModelResult:
    """Validation and test metrics of the trained model, in the baselines' report format."""
    demographics = demographics_matrix(users, split.user_ids)
    params = {
        "dim": result.model.config.dim,
        "epochs": result.best_epoch,
        "temperature": result.model.config.temperature,
    }
    valid = evaluate(
        TwoTowerScorer(result.model, split.stage("valid"), demographics, params),
        split.stage("valid"),
        item_features,
    )
    test = evaluate(
        TwoTowerScorer(result.model, split.stage("test"), demographics, params),
        split.stage("test"),
        item_features,
    )
    return ModelResult("TwoTower", params, valid, test, [], result.seconds)
