"""Baselines and the validation grids they are tuned over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evaluation.baselines.base import Recommender
from evaluation.baselines.ease import EASE
from evaluation.baselines.itemknn import ItemKNN
from evaluation.baselines.mf import ALSMatrixFactorization
from evaluation.baselines.popularity import MostPopular

Grid = list[dict[str, Any]]

BASELINES: dict[str, tuple[Callable[..., Recommender], Grid]] = {
    "MostPopular": (MostPopular, [{}]),
    "ItemKNN": (ItemKNN, [{"neighbors": n} for n in (5, 10, 20, 50, 100, 200, 500)]),
    "EASE": (EASE, [{"l2": lam} for lam in (10, 20, 50, 100, 200, 500, 1000, 2000)]),
    "ALS-MF": (
        ALSMatrixFactorization,
        [
            {"factors": f, "regularization": r, "alpha": a}
            for f in (16, 32, 64, 128)
            for r in (0.01, 0.1, 1.0)
            for a in (0.5, 1.0, 5.0, 20.0)
        ],
    ),
}
