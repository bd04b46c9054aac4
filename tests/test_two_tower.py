"""Two-tower model and trainer on planted structure (small, fast, real torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.features import ItemFeatures
from retrieval.training import SequenceData, TrainConfig, TwoTowerTrainer, make_windows
from retrieval.two_tower import PAD, TwoTowerConfig, TwoTowerModel

N_CLUSTERS, PER_CLUSTER, TEXT_DIM = 8, 15, 32
SMALL = TwoTowerConfig(dim=32, max_history=20, layers=1, heads=2, dropout=0.1)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _catalog(seed: int = 0) -> tuple[ItemFeatures, np.ndarray]:
    """Items in clusters; a cluster shares a genre and a text direction."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((N_CLUSTERS, TEXT_DIM)))
    cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    text = _unit(centres[cluster] + 0.3 * rng.standard_normal((len(cluster), TEXT_DIM)))
    genres = np.eye(N_CLUSTERS, dtype=np.float32)[cluster]
    years = np.full(len(cluster), 10, dtype=np.int64)
    ids = np.arange(len(cluster), dtype=np.int64) * 10 + 1000  # raw ids are not positions
    vocab = tuple(f"g{i}" for i in range(N_CLUSTERS))
    return ItemFeatures(ids, genres, years, text, vocab), centres


def _sequences(n_users: int = 160, length: int = 12, seed: int = 1) -> SequenceData:
    """Each user stays inside one cluster, so the next item is predictable from the last."""
    rng = np.random.default_rng(seed)
    seqs, times = [], []
    for user in range(n_users):
        c = user % N_CLUSTERS
        items = rng.choice(PER_CLUSTER, size=length, replace=False) + c * PER_CLUSTER
        seqs.append(items.astype(np.int64) + 1)  # slots
        times.append(np.arange(length, dtype=np.int64) * 3600 + 1_000_000)
    return SequenceData(seqs, times, np.zeros((n_users, 3), dtype=np.int64))


def _cluster_validator(data: SequenceData):
    def run(model: TwoTowerModel) -> dict[str, float]:
        with torch.inference_mode():
            hist = torch.from_numpy(np.stack([s[:-1] for s in data.sequences]))
            u = model.user_vectors(
                hist,
                torch.zeros_like(hist),
                torch.from_numpy(data.demographics),
                torch.zeros(len(hist), 3).long(),
            )
            scores = (u @ model.items.embed_all().T).numpy()
        targets = np.array([s[-1] - 1 for s in data.sequences])
        top = np.argsort(-scores, axis=1)[:, :PER_CLUSTER]
        same = (top // PER_CLUSTER) == (targets // PER_CLUSTER)[:, None]
        return {"recall@10": float(same.mean())}

    return run


@pytest.fixture(scope="module")
def trained() -> tuple[TwoTowerModel, ItemFeatures, np.ndarray, float]:
    features, centres = _catalog()
    data = _sequences()
    config = TrainConfig(max_epochs=6, batch_size=32, random_negatives=64, patience=6, lr=5e-3)
    trainer = TwoTowerTrainer(features, data, SMALL, config)
    result = trainer.fit(_cluster_validator(data))
    return result.model, features, centres, result.history[-1].valid["recall@10"]


def test_padding_never_produces_nan_and_serving_matches_training_path() -> None:
    features, _ = _catalog()
    model = TwoTowerModel(features, SMALL).eval()
    history = torch.zeros(3, SMALL.max_history, dtype=torch.long)
    history[0, -1] = 5  # one item, mostly padding
    history[1, -4:] = torch.tensor([1, 2, 3, 4])
    demo, ctx = torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long)
    gaps = torch.zeros_like(history)
    with torch.inference_mode():
        last = model.user_vectors(history, gaps, demo, ctx)
        every = model.user_vectors(history, gaps, demo, ctx, all_positions=True)
    assert torch.isfinite(last).all() and torch.isfinite(every).all()
    assert torch.allclose(last, every[:, -1], atol=1e-5)


def test_user_tower_is_causal() -> None:
    features, _ = _catalog()
    model = TwoTowerModel(features, SMALL).eval()
    a = torch.arange(1, SMALL.max_history + 1).unsqueeze(0)
    b = a.clone()
    b[0, -1] = 99  # change only the newest item
    demo, ctx = torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    gaps = torch.ones_like(a)
    with torch.inference_mode():
        va = model.user_vectors(a, gaps, demo, ctx, all_positions=True)
        vb = model.user_vectors(b, gaps, demo, ctx, all_positions=True)
    assert torch.allclose(va[:, :-1], vb[:, :-1], atol=1e-6)
    assert not torch.allclose(va[:, -1], vb[:, -1])


def test_windows_cover_every_transition_once() -> None:
    data = SequenceData(
        [np.arange(1, 8), np.arange(1, 3)], [np.arange(7), np.arange(2)], np.zeros((2, 3), int)
    )
    windows = make_windows(data, max_history=3)
    x, y, users = windows.inputs, windows.targets, windows.users
    pairs = {
        (int(a), int(b))
        for xr, yr in zip(x, y, strict=True)
        for a, b in zip(xr, yr, strict=True)
        if b != PAD
    }
    assert pairs == {(i, i + 1) for i in range(1, 7)} | {(1, 2)}
    assert sorted(set(users.tolist())) == [0, 1]


def test_pool_holds_every_positive_and_log_q_follows_frequency() -> None:
    features, _ = _catalog()
    data = _sequences()
    trainer = TwoTowerTrainer(features, data, SMALL, TrainConfig(random_negatives=16))
    model = TwoTowerModel(features, SMALL)
    positives = torch.tensor([3, 3, 7, 42])
    pool, columns = trainer._pool(positives, trainer._hard_table(model), torch.Generator())
    assert torch.equal(pool[columns], positives)
    assert len(torch.unique(pool)) == len(pool)
    log_q = trainer._log_q(torch.tensor([3]), n_queries=10, n_random=16)
    expected = np.log(10 * trainer.item_freq[3].item() + 16 / trainer.n_items)
    assert log_q.item() == pytest.approx(expected, rel=1e-5)


def test_training_learns_the_planted_clusters_reproducibly(trained) -> None:
    _, _, _, recall = trained
    assert recall > 0.6  # chance level is 1 / N_CLUSTERS = 0.125
    features, _ = _catalog()
    data = _sequences()
    config = TrainConfig(max_epochs=2, batch_size=32, random_negatives=64, seed=7)
    runs = [
        TwoTowerTrainer(features, data, SMALL, config).fit(_cluster_validator(data))
        for _ in range(2)
    ]
    assert [h.loss for h in runs[0].history] == [h.loss for h in runs[1].history]
