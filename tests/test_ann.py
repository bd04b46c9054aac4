"""AnnIndex against numpy brute force on clustered data, like real item embeddings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np
import pytest

from evaluation.bench_io import read_section
from retrieval.ann import KINDS, AnnConfig, AnnIndex, ann_recall

from .conftest import REPO_ROOT

DIM = 32
N_ITEMS = 20_000
K = 100


@dataclass(frozen=True)
class Clustered:
    vectors: np.ndarray
    ids: np.ndarray  # raw ids, shuffled and offset: an index returning row positions fails
    queries: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, clusters: int, seed: int) -> Clustered:
    """Unit vectors around `clusters` centres; queries are noisy means of one cluster's items.

    Uniform random vectors would make every index look alike; clusters are what
    make graph and inverted-list search able to fail.
    """
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((clusters, DIM)))
    member = rng.integers(0, clusters, n)
    vectors = _unit(centres[member] + rng.standard_normal((n, DIM)) * 0.8 / np.sqrt(DIM))
    ids = rng.permutation(n).astype(np.int64) * 3 + 1_000
    picks = [rng.choice(np.flatnonzero(member == c), 5) for c in rng.integers(0, clusters, 200)]
    noise = rng.standard_normal((len(picks), DIM)) * 0.3 / np.sqrt(DIM)
    return Clustered(vectors, ids, _unit(np.stack([vectors[p].mean(0) for p in picks]) + noise))


def brute_force(data: Clustered, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ data.vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, axis=1), data.ids[top]


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """One thread makes HNSW builds deterministic, and is faster on a busy 2-core box:
    faiss's many short parallel regions (PQ training) stall when threads are descheduled."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> Clustered:
    return clustered(N_ITEMS, clusters=200, seed=0)


# 4-d PQ sub-vectors: with the default 16 bytes they would be 2-d here and the
# codebook training alone would take most of this file's time budget
CONFIG = {"exact": AnnConfig(), "hnsw": AnnConfig(), "ivfpq": AnnConfig(pq_bytes=DIM // 4)}


@pytest.fixture(scope="module")
def indexes(data: Clustered) -> dict[str, AnnIndex]:
    return {kind: AnnIndex.build(data.vectors, data.ids, kind, CONFIG[kind]) for kind in KINDS}


def test_exact_search_equals_numpy_brute_force(data: Clustered, indexes) -> None:
    scores, ids = indexes["exact"].search(data.queries, K)
    want_scores, want_ids = brute_force(data, data.queries, K)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
    # item i of each list really has the i-th best score (near-ties may swap places)
    row_of = {item: row for row, item in enumerate(data.ids.tolist())}
    rows = np.vectorize(row_of.__getitem__)(ids)
    true_scores = np.einsum("qd,qkd->qk", data.queries, data.vectors[rows])
    np.testing.assert_allclose(true_scores, want_scores, rtol=0, atol=1e-5)
    assert (ids == want_ids).mean() > 0.999
    assert all(len(set(row)) == K for row in ids.tolist())


@pytest.mark.parametrize(("kind", "floor"), [("hnsw", 0.98), ("ivfpq", 0.98)])
def test_approximate_kinds_keep_recall_against_exact(
    data: Clustered, indexes, kind: str, floor: float
) -> None:
    # measured (3 data seeds): hnsw 0.9999-1.0, ivfpq 0.9989-0.999; the floors still catch
    # ivfpq with nprobe 8 (0.977) or without re-scoring (0.954), hnsw with efSearch 16 (0.873)
    _, exact_ids = indexes["exact"].search(data.queries, K)
    _, approx_ids = indexes[kind].search(data.queries, K)
    assert ann_recall(approx_ids, exact_ids, K) >= floor


@pytest.mark.parametrize("kind", KINDS)
def test_every_item_finds_itself_under_its_own_id(data: Clustered, indexes, kind: str) -> None:
    rows = np.arange(0, N_ITEMS, N_ITEMS // 50)
    scores, ids = indexes[kind].search(data.vectors[rows], 10)
    np.testing.assert_array_equal(ids[:, 0], data.ids[rows])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_gives_identical_results(
    data: Clustered, indexes, kind: str, tmp_path
) -> None:
    index = indexes[kind]
    index.save(tmp_path / "nested" / "items.faiss")
    loaded = AnnIndex.load(tmp_path / "nested" / "items.faiss")
    assert (loaded.kind, len(loaded), loaded.dim, loaded.config) == (
        kind,
        N_ITEMS,
        DIM,
        index.config,
    )
    before, after = index.search(data.queries, K), loaded.search(data.queries, K)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])


@pytest.mark.parametrize("kind", KINDS)
def test_added_items_are_found_without_rebuild(kind: str) -> None:
    small = clustered(10_000, clusters=100, seed=1)  # the smallest catalog ivfpq accepts
    index = AnnIndex.build(small.vectors, small.ids, kind, CONFIG[kind])
    new_ids = np.array([7, 10**12], dtype=np.int64)  # caller's ids, far from the others
    index.add(small.queries[:2], new_ids)  # each new vector is its query's perfect match
    assert len(index) == 10_000 + 2
    scores, ids = index.search(small.queries[:2], 10)
    np.testing.assert_array_equal(ids[:, 0], new_ids)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
    # the old catalog's best matches are still there, just one place down
    for row, old_best in zip(ids, brute_force(small, small.queries[:2], 2)[1], strict=True):
        assert set(old_best) <= set(row[1:].tolist())


def test_ivfpq_on_a_small_catalog_trains_smaller_codebooks(capfd) -> None:
    small = clustered(2_000, clusters=20, seed=4)  # MovieLens-sized: 5-bit codebooks
    index = AnnIndex.build(small.vectors, small.ids, "ivfpq")
    _, ids = index.search(small.vectors[:50], 10)
    np.testing.assert_array_equal(ids[:, 0], small.ids[:50])
    assert "WARNING" not in capfd.readouterr().err  # no under-trained k-means


def test_auto_switches_from_exact_to_ivfpq_at_the_configured_size(data: Clustered) -> None:
    config = AnnConfig(exact_max_items=1_000)
    assert AnnIndex.build(data.vectors[:1_000], data.ids[:1_000], "auto", config).kind == "exact"
    assert AnnIndex.build(data.vectors[:1_001], data.ids[:1_001], "auto", config).kind == "ivfpq"


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_fewer_items_than_k_pads_with_minus_one(kind: str) -> None:
    vectors = _unit(np.random.default_rng(2).standard_normal((5, DIM)))
    _, ids = AnnIndex.build(vectors, np.arange(10, 15), kind).search(vectors[0], 8)
    assert sorted(ids[0, :5].tolist()) == [10, 11, 12, 13, 14]
    assert ids[0, 5:].tolist() == [-1, -1, -1]


def test_ann_recall_on_a_hand_computed_case() -> None:
    approx = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[1, 2, 9], [5, 4, 0]])
    assert ann_recall(approx, exact, 2) == pytest.approx(1.0)  # order inside the top-k is free
    assert ann_recall(approx, exact, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert ann_recall(approx, np.array([[7, 8, 9], [1, 2, 3]]), 3) == 0.0


GOOD = _unit(np.random.default_rng(3).standard_normal((300, DIM)))


@pytest.mark.parametrize(
    ("build_args", "message"),
    [
        ((GOOD[0], np.arange(1)), "2-D"),
        ((GOOD, np.arange(299)), "one id per vector"),
        ((GOOD, np.arange(300).reshape(150, 2)), "one id per vector"),
        ((GOOD, np.zeros(300)), "unique"),
        ((GOOD, np.arange(300) - 1), "non-negative"),
        ((np.where(np.eye(300, DIM) > 0, np.nan, GOOD), np.arange(300)), "NaN"),
        ((GOOD, np.arange(300), "annoy"), "unknown index kind 'annoy'"),
        ((GOOD, np.arange(300), "ivfpq"), "at least 624 vectors"),
        ((GOOD, np.arange(300), "ivfpq", AnnConfig(pq_bytes=5)), "must divide"),
    ],
)
def test_bad_build_input_raises_a_clear_value_error(build_args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnnIndex.build(*build_args)


def test_bad_search_and_add_input_raises_a_clear_value_error() -> None:
    index = AnnIndex.build(GOOD, np.arange(300), "exact")
    with pytest.raises(ValueError, match="dimension 16, the index has 32"):
        index.search(GOOD[:, :16], 5)
    with pytest.raises(ValueError, match="k must be"):
        index.search(GOOD[:2], 0)
    with pytest.raises(ValueError, match="dimension 16"):
        index.add(GOOD[:2, :16], np.array([400, 401]))
    with pytest.raises(ValueError, match="already in the index: \\[5\\]"):
        index.add(GOOD[:2], np.array([400, 5]))
    with pytest.raises(ValueError, match="one id per vector"):
        index.add(GOOD[:2], np.array([400]))
    assert len(index) == 300  # nothing half-added


def test_committed_latency_results_match_results_md() -> None:
    payload = json.loads((REPO_ROOT / "bench/results/retrieval_latency.json").read_text())
    section = read_section("retrieval_latency", REPO_ROOT / "bench/RESULTS.md")
    assert payload["command"] in section
    assert payload["dataset"] == "generated-1M-dim64"
    metrics = payload["metrics"]
    for kind in KINDS:
        row = next(line for line in section.splitlines() if line.startswith(f"| {kind} |"))
        cells = {float(c) for c in row.split("|") if c.strip().replace(".", "").isdigit()}
        for name, value in metrics.items():
            if name.startswith(f"{kind}."):
                assert value in cells, name  # the JSON holds the figures as the table rounds them
    assert metrics["hnsw.p99_ms"] <= 10.0 and metrics["hnsw.recall@100"] >= 0.95
