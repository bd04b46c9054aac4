"""Production retrieval training end to end on ml-100k: CLI, bundle, reload, new items."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from retrieval.base import RequestContext
from retrieval.bundle import RetrievalBundle
from retrieval.sources.two_tower import TwoTowerSource

from .conftest import run_marquee


@pytest.fixture(scope="module")
def artifacts(bundle_artifacts: Path) -> Path:
    return bundle_artifacts


@pytest.fixture(scope="module")
def trained_bundle(ml100k_bundle: tuple[Path, str]) -> Path:
    return ml100k_bundle[0] / "retrieval"


def _marquee(artifacts: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_marquee(artifacts, data_dir, *args)


def test_bundle_reloads_and_serves_identical_candidates(trained_bundle: Path, ml_100k) -> None:
    bundle = RetrievalBundle.load(trained_bundle)
    assert bundle.meta["dataset"] == "ml-100k" and bundle.meta["best_epoch"] >= 1
    assert bundle.index is not None and len(bundle.index) == len(ml_100k.items)
    source = TwoTowerSource(
        bundle.model, bundle.features.item_ids, bundle.index, bundle.occupation_vocab
    )
    rebuilt = TwoTowerSource(bundle.model, bundle.features.item_ids, None, bundle.occupation_vocab)
    history = ml_100k.events.loc[ml_100k.events["user_id"] == 1, "item_id"].to_numpy()[:30]
    ctx = RequestContext(
        user_id=1,
        history=history,
        timestamp=880_000_000,
        demographics={"gender": "M", "age": 24, "occupation": "technician"},
    )
    got = [c.item_id for c in source.candidates(ctx, 50)]
    assert got == [c.item_id for c in rebuilt.candidates(ctx, 50)]
    assert len(got) == 50 and not set(got) & set(history.tolist())


def test_demographics_change_the_user_vector(trained_bundle: Path) -> None:
    bundle = RetrievalBundle.load(trained_bundle)
    source = TwoTowerSource(
        bundle.model, bundle.features.item_ids, bundle.index, bundle.occupation_vocab
    )
    base = RequestContext(user_id=None, history=np.array([], dtype=np.int64), timestamp=0)
    young = RequestContext(
        None, base.history, 0, {"gender": "F", "age": 19, "occupation": "student"}
    )
    old = RequestContext(None, base.history, 0, {"gender": "M", "age": 60, "occupation": "retired"})
    assert not np.allclose(source.user_vector(young), source.user_vector(old))


def test_index_command_rebuilds_with_hnsw(trained_bundle: Path, artifacts: Path, data_dir) -> None:
    proc = _marquee(artifacts, data_dir, "index", "--dataset", "ml-100k", "--kind", "hnsw")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recall = float(proc.stdout.strip().rsplit(" ", 1)[-1])
    assert recall >= 0.95
    assert RetrievalBundle.load(trained_bundle).index.kind == "hnsw"
    bad = _marquee(artifacts, data_dir, "index", "--dataset", "ml-100k", "--kind", "lsh")
    assert bad.returncode == 2 and "unknown index kind" in bad.stderr


def test_train_ranker_saves_a_ranker_that_orders_a_pool(
    trained_bundle: Path, ml_100k, ml100k_bundle
) -> None:
    from ranking.pipeline import load_ranker
    from retrieval.merge import PooledCandidate

    assert "held-out NDCG@10" in ml100k_bundle[1]
    ranker = load_ranker(trained_bundle.parent / "ranking")
    bundle = RetrievalBundle.load(trained_bundle)
    source = TwoTowerSource(
        bundle.model, bundle.features.item_ids, bundle.index, bundle.occupation_vocab
    )
    history = ml_100k.events.loc[ml_100k.events["user_id"] == 7, "item_id"].to_numpy()[:40]
    ctx = RequestContext(user_id=7, history=history, timestamp=880_000_000)
    pool = [
        PooledCandidate(c.item_id, ("two_tower",), {"two_tower": c.score}, {"two_tower": r})
        for r, c in enumerate(source.candidates(ctx, 200))
    ]
    ranked = ranker.rank(ctx, pool)
    assert sorted(r.item_id for r in ranked) == sorted(c.item_id for c in pool)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= r.objectives["click"] <= 1.0 for r in ranked)


def test_the_served_user_vector_matches_the_model(trained_bundle: Path, ml_100k) -> None:
    """The source looks history vectors up in a precomputed table; it must equal the model."""
    import torch

    from retrieval.training import context_of, history_gaps, left_pad

    bundle = RetrievalBundle.load(trained_bundle)
    source = TwoTowerSource(
        bundle.model, bundle.features.item_ids, bundle.index, bundle.occupation_vocab
    )
    events = ml_100k.events.sort_values(["timestamp", "item_id"])
    mine = events.loc[events["user_id"] == 5]
    history, times = mine["item_id"].to_numpy()[:60], mine["timestamp"].to_numpy()[:60]
    ctx = RequestContext(
        5, history, int(times[-1]) + 600, {"gender": "F", "age": 33}, history_times=times
    )
    slots = np.array([source.slot_of[int(i)] for i in history])
    length = bundle.model.config.max_history
    with torch.inference_mode():
        direct = bundle.model.user_vectors(
            torch.from_numpy(left_pad([slots], length)),
            torch.from_numpy(left_pad([history_gaps(times)], length)),
            torch.from_numpy(source._demographics(ctx)),
            torch.from_numpy(context_of(np.array([ctx.timestamp]), np.array([times[-1]]))),
        ).numpy()
    np.testing.assert_allclose(source.user_vector(ctx), direct, rtol=1e-5, atol=1e-6)
