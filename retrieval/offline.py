"""The two-tower model on an offline split: training with early stopping, scoring users.

Protocol (as in the public SASRec/LlamaRec setup): train on the train part with
early stopping on validation Recall@10; the test stage then feeds each user's
train+validation history to the trained user tower. Unlike the matrix baselines
there is no refit: the sequence model sees the validation item as input history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from catalog.metrics import mask_history, metrics_from_ranks, target_ranks
from catalog.splits import EvalStage, Interactions, Split
from retrieval.features import ItemFeatures, UserFeatures
from retrieval.training import (
    SequenceData,
    TrainConfig,
    TrainResult,
    TwoTowerTrainer,
    context_of,
    history_gaps,
    left_pad,
)
from retrieval.two_tower import TwoTowerConfig, TwoTowerModel


def sequence_data(train: Interactions, demographics: np.ndarray) -> SequenceData:
    """Chronological vocabulary slots (split item index + 1) per user."""
    seqs = [np.empty(0, dtype=np.int64)] * train.n_users
    times = [np.empty(0, dtype=np.int64)] * train.n_users
    for user, frame in train.events.groupby("user_idx", sort=True):
        seqs[int(user)] = frame["item_idx"].to_numpy(dtype=np.int64) + 1
        times[int(user)] = frame["timestamp"].to_numpy(dtype=np.int64)
    return SequenceData(seqs, times, demographics)


def demographics_matrix(users: pd.DataFrame, user_ids: np.ndarray) -> np.ndarray:
    feats = UserFeatures.build(users, user_ids)
    return np.stack([feats.gender, feats.age, feats.occupation], axis=1)


class TwoTowerScorer:
    """Adapts a trained model to the evaluator's `score(users)` for one stage."""

    name = "TwoTower"

    def __init__(
        self,
        model: TwoTowerModel,
        stage: EvalStage,
        demographics: np.ndarray,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self._params = params or {}
        data = sequence_data(stage.train, demographics)
        length = model.config.max_history
        self.history = torch.from_numpy(left_pad(data.sequences, length))
        self.gaps = torch.from_numpy(left_pad([history_gaps(t) for t in data.timestamps], length))
        last = np.array([t[-1] if len(t) else 0 for t in data.timestamps], dtype=np.int64)
        self.demographics = torch.from_numpy(demographics)
        self.context = torch.from_numpy(context_of(stage.request_times, last))
        with torch.inference_mode():
            self.item_vectors = model.items.embed_all()

    def fit(self, train: Interactions) -> None:  # trained beforehand; kept for the protocol
        pass

    def score(self, users: np.ndarray) -> np.ndarray:
        idx = torch.from_numpy(np.asarray(users, dtype=np.int64))
        with torch.inference_mode():
            u = self.model.user_vectors(
                self.history[idx], self.gaps[idx], self.demographics[idx], self.context[idx]
            )
            return (u @ self.item_vectors.T).numpy()

    def params(self) -> dict[str, Any]:
        return self._params


def validator(
    stage: EvalStage, demographics: np.ndarray
) -> Callable[[TwoTowerModel], dict[str, float]]:
    """Validation Recall/NDCG@10 of the model on `stage` (fast path used every epoch)."""

    def run(model: TwoTowerModel) -> dict[str, float]:
        scorer = TwoTowerScorer(model, stage, demographics)
        users = stage.users
        scores = mask_history(scorer.score(users), stage.history[users])
        ranks = target_ranks(scores, stage.targets[users].indices)
        return metrics_from_ranks(ranks, ks=(10, 50))

    return run


def train_on_split(
    split: Split,
    items: pd.DataFrame,
    users: pd.DataFrame,
    text_vectors: np.ndarray,
    model_config: TwoTowerConfig | None = None,
    train_config: TrainConfig | None = None,
    progress: Callable[[int, float, dict[str, float]], None] | None = None,
) -> tuple[TrainResult, ItemFeatures]:
    """Train on the split's train part, early-stopped on its validation stage."""
    features = ItemFeatures.build(items, split.item_ids, text_vectors)
    demographics = demographics_matrix(users, split.user_ids)
    valid = split.stage("valid")
    trainer = TwoTowerTrainer(
        features, sequence_data(valid.train, demographics), model_config, train_config
    )
    result = trainer.fit(validator(valid, demographics), progress=progress)
    return result, features


def cached_train_on_split(
    split: Split,
    items: pd.DataFrame,
    users: pd.DataFrame,
    text_vectors: np.ndarray,
    cache_dir: Path,
    catalog_version: str,
    model_config: TwoTowerConfig | None = None,
    train_config: TrainConfig | None = None,
    progress: Callable[[int, float, dict[str, float]], None] | None = None,
) -> TrainResult:
    """`train_on_split`, reusing a model trained with the same data and configs.

    Stage-by-stage reports (ranking, LLM re-rank) all need the retrieval model of the
    split; training it once per catalog version and config keeps them fast.
    """
    model_config = model_config or TwoTowerConfig()
    train_config = train_config or TrainConfig()
    key = hashlib.sha256(
        json.dumps(
            [
                split.name,
                split.dataset,
                catalog_version,
                model_config.to_dict(),
                train_config.to_dict(),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12]
    path = Path(cache_dir) / f"two-tower-{split.dataset}-{key}.pt"
    features = ItemFeatures.build(items, split.item_ids, text_vectors)
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        model = TwoTowerModel(features, model_config)
        model.load_state_dict(saved["state"])
        model.eval()
        return TrainResult(model, saved["best_epoch"], [], saved["seconds"])
    result, _ = train_on_split(
        split, items, users, text_vectors, model_config, train_config, progress
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state": result.model.state_dict(),
            "best_epoch": result.best_epoch,
            "seconds": result.seconds,
        },
        path,
    )
    return result
