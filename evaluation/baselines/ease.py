"""EASE^R (Steck 2019): closed-form item-item linear autoencoder, a hard baseline to beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from catalog.splits import Interactions


class EASE:
    name = "EASE"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2
        self._x: sp.csr_matrix | None = None
        self._b: np.ndarray | None = None

    def fit(self, train: Interactions) -> None:
        x = train.matrix()
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        np.fill_diagonal(b, 0.0)
        self._x, self._b = x, b.astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        assert self._x is not None and self._b is not None, "fit first"
        return np.asarray(self._x[users] @ self._b)

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2}
