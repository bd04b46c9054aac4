"""Train the production retrieval model and write a versioned bundle.

Production training uses every event except each user's latest one, which serves
as the early-stopping validation target; the vocabulary is every item with at
least one event, and catalog items nobody has rated yet are indexed through the
item tower's content path, exactly as a brand-new title would be.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from catalog.clock import ClockSpec
from catalog.paths import HasPaths, HasTrainingSettings
from catalog.splits import loo_full
from catalog.tables import Catalog
from retrieval.ann import AnnIndex
from retrieval.bundle import RetrievalBundle
from retrieval.features import ItemFeatures, UserFeatures
from retrieval.offline import demographics_matrix, sequence_data, validator
from retrieval.text_encoder import item_embeddings
from retrieval.training import TrainConfig, TwoTowerTrainer, gap_cap
from retrieval.two_tower import TwoTowerConfig

Progress = Callable[[int, float, dict[str, float]], None]


def bundles_root(settings: HasPaths, dataset: str) -> Path:
    return Path(settings.artifacts_dir) / "bundles" / dataset


def latest_bundle(settings: HasPaths, dataset: str) -> Path | None:
    pointer = bundles_root(settings, dataset) / "LATEST"
    if not pointer.is_file():
        return None
    folder = bundles_root(settings, dataset) / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def text_vectors(catalog: Catalog, settings: HasPaths, progress: bool = False) -> np.ndarray:
    cache = Path(settings.artifacts_dir) / "embeddings" / catalog.name
    return item_embeddings(catalog.items, cache, catalog.version, progress=progress)


def train_retrieval_bundle(
    catalog: Catalog,
    settings: HasTrainingSettings,
    model_config: TwoTowerConfig | None = None,
    train_config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> RetrievalBundle:
    torch.manual_seed(settings.seed)
    split = loo_full(catalog.events, catalog.name, k=1)
    stage = split.stage("test")  # train = all but each user's last event
    text = text_vectors(catalog, settings)
    features = ItemFeatures.build(catalog.items, split.item_ids, text)
    demographics = demographics_matrix(catalog.users, split.user_ids)
    sequences = sequence_data(stage.train, demographics)
    trainer = TwoTowerTrainer(
        features,
        sequences,
        model_config,
        train_config or TrainConfig(seed=settings.seed),
    )
    result = trainer.fit(validator(stage, demographics), progress=progress)
    model = result.model
    with torch.inference_mode():
        index = AnnIndex.build(model.items.embed_all().numpy(), split.item_ids)
        unrated = catalog.items.loc[~catalog.items["item_id"].isin(split.item_ids)]
        if len(unrated):
            extra = ItemFeatures.build(
                catalog.items, unrated["item_id"].to_numpy(), text, features.genre_vocab
            )
            vectors = model.items.embed_new(extra.genres, extra.year_buckets, extra.text)
            index.add(vectors.numpy(), extra.item_ids)
    best = next(log for log in result.history if log.epoch == result.best_epoch)
    meta = {
        "dataset": catalog.name,
        "catalog_version": catalog.version,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 1),
        "validation": best.valid,
        "train_config": trainer.config.to_dict(),
        "content_only_items": len(unrated),
        # The time the models were trained up to and the clock to serve them on (data
        # time for a historical catalog; see catalog.clock), and the request gap cap.
        "clock": ClockSpec.for_data(int(catalog.events["timestamp"].max())).to_dict(),
        "context_gap_cap": gap_cap(sequences.timestamps),
    }
    occupations = UserFeatures.build(catalog.users, split.user_ids).occupation_vocab
    return RetrievalBundle(model, features, occupations, meta, index)


def save_bundle(bundle: RetrievalBundle, settings: HasPaths) -> Path:
    """Write under bundles/<dataset>/<version>/retrieval and point LATEST at it."""
    dataset = bundle.meta["dataset"]
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + bundle.meta["catalog_version"]
    root = bundles_root(settings, dataset)
    bundle.save(root / version / "retrieval")
    tmp = root / "LATEST.tmp"
    tmp.write_text(version)
    tmp.replace(root / "LATEST")
    return root / version
