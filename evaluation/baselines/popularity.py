"""Most-popular: the floor every personalized model must clear."""

from __future__ import annotations

from typing import Any

import numpy as np

from catalog.splits import Interactions


class MostPopular:
    name = "MostPopular"

    def __init__(self) -> None:
        self._counts: np.ndarray | None = None

    def fit(self, train: Interactions) -> None:
        self._counts = np.asarray(train.matrix().sum(axis=0)).ravel().astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        assert self._counts is not None, "fit first"
        return np.broadcast_to(self._counts, (len(users), self._counts.size)).copy()

    def params(self) -> dict[str, Any]:
        return {}
