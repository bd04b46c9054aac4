"""Strong, simple baselines every learned stage must beat on the same split."""

from evaluation.baselines.base import Recommender
from evaluation.baselines.ease import EASE
from evaluation.baselines.itemknn import ItemKNN
from evaluation.baselines.mf import ALSMatrixFactorization
from evaluation.baselines.popularity import MostPopular

__all__ = ["EASE", "ALSMatrixFactorization", "ItemKNN", "MostPopular", "Recommender"]
