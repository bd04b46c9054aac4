"""Save and load a trained retrieval model with everything needed to serve it.

A bundle folder holds the weights, the configs, the item vocabulary and its
features (the item tower's buffers), the user-feature vocabulary and the ANN
index, so serving never needs the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval.ann import AnnIndex
from retrieval.features import ItemFeatures
from retrieval.two_tower import TwoTowerConfig, TwoTowerModel


@dataclass
class RetrievalBundle:
    model: TwoTowerModel
    features: ItemFeatures
    occupation_vocab: tuple[str, ...]
    meta: dict[str, Any]
    index: AnnIndex | None = None

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / "model.pt")
        np.savez(
            folder / "features.npz",
            item_ids=self.features.item_ids,
            genres=self.features.genres,
            year_buckets=self.features.year_buckets,
            text=self.features.text,
        )
        meta = {
            **self.meta,
            "model_config": self.model.config.to_dict(),
            "genre_vocab": list(self.features.genre_vocab),
            "occupation_vocab": list(self.occupation_vocab),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        if self.index is not None:
            self.index.save(folder / "index.faiss")

    @classmethod
    def load(cls, folder: Path) -> RetrievalBundle:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        arrays = np.load(folder / "features.npz")
        features = ItemFeatures(
            item_ids=arrays["item_ids"],
            genres=arrays["genres"],
            year_buckets=arrays["year_buckets"],
            text=arrays["text"],
            genre_vocab=tuple(meta["genre_vocab"]),
        )
        model = TwoTowerModel(features, TwoTowerConfig(**meta["model_config"]))
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        index_path = folder / "index.faiss"
        index = AnnIndex.load(index_path) if index_path.is_file() else None
        return cls(model, features, tuple(meta["occupation_vocab"]), meta, index)
