"""Implicit-feedback matrix factorization (Hu, Koren & Volinsky 2008) via `implicit`'s ALS."""

from __future__ import annotations

from typing import Any

import numpy as np

from catalog.splits import Interactions


class ALSMatrixFactorization:
    name = "ALS-MF"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 20,
        seed: int = 42,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self._users: np.ndarray | None = None
        self._items: np.ndarray | None = None

    def fit(self, train: Interactions) -> None:
        # implicit's inner loops are slowed (and it warns) when BLAS runs its own threads.
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            model.fit(train.matrix(), show_progress=False)
        self._users = np.asarray(model.user_factors)
        self._items = np.asarray(model.item_factors)

    def score(self, users: np.ndarray) -> np.ndarray:
        assert self._users is not None and self._items is not None, "fit first"
        return self._users[users] @ self._items.T

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
        }
