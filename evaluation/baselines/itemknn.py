"""Item-based kNN with cosine similarity (Sarwar et al. 2001; Deshpande & Karypis 2004)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from catalog.splits import Interactions


class ItemKNN:
    name = "ItemKNN"

    def __init__(self, neighbors: int = 100, shrink: float = 0.0) -> None:
        self.neighbors = neighbors
        self.shrink = shrink
        self._x: sp.csr_matrix | None = None
        self._sim: np.ndarray | None = None

    def fit(self, train: Interactions) -> None:
        x = train.matrix()
        co = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.shrink + 1e-9)
        np.fill_diagonal(sim, 0.0)
        if self.neighbors < sim.shape[0]:
            # keep each item's top neighbours (per column: "items similar to j")
            drop = np.argpartition(-sim, kth=self.neighbors, axis=0)[self.neighbors :, :]
            np.put_along_axis(sim, drop, 0.0, axis=0)
        self._x, self._sim = x, sim

    def score(self, users: np.ndarray) -> np.ndarray:
        assert self._x is not None and self._sim is not None, "fit first"
        return np.asarray(self._x[users] @ self._sim)

    def params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "shrink": self.shrink}
