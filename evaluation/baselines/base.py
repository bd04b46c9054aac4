"""The small contract the evaluator needs from any model."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from catalog.splits import Interactions


@runtime_checkable
class Recommender(Protocol):
    name: str

    def fit(self, train: Interactions) -> None:
        """Learn from the stage's training interactions only."""

    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores (len(users), n_items); higher is better. History masking is the caller's."""

    def params(self) -> dict[str, Any]:
        """Hyperparameters, for the report."""
