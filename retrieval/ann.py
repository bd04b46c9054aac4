"""faiss inner-product index: exact for small catalogs, HNSW or IVF-PQ for large ones.

All indexes carry the catalog's raw item ids (IndexIDMap2 around the real index),
so new items can be added without a rebuild and results need no id translation.
Bad input raises ValueError here rather than a faiss assertion deep in C++, whose
message names neither the argument nor the expected shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

Kind = Literal["auto", "exact", "hnsw", "ivfpq"]
KINDS = ("exact", "hnsw", "ivfpq")
Progress = Callable[[str, int, int], None]  # (phase, done, total)

ADD_CHUNK = 50_000  # adds go in chunks so long builds can report progress
PQ_NBITS = 8  # 256 centroids per sub-quantizer: faiss's fast lookup-table path
MIN_PQ_NBITS = 4  # smaller catalogs get smaller codebooks, down to 16 centroids
MIN_POINTS_PER_LIST = 39  # below this faiss k-means warns and clusters come out poor
MIN_IVFPQ_ITEMS = MIN_POINTS_PER_LIST * 2**MIN_PQ_NBITS


@dataclass(frozen=True)
class AnnConfig:
    exact_max_items: int = 200_000  # "auto" uses exact search up to this size
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 256  # a floor: a search for k results always explores >= k
    ivf_lists: int = 0  # 0: about 4*sqrt(n), capped so every list gets enough training points
    ivf_nprobe: int = 64  # 1M clustered items: recall@100 0.999 (bench/RESULTS.md), ~1 ms
    ivf_train_per_list: int = 64  # k-means sample size per list (faiss wants >= 39)
    pq_bytes: int = 16  # sub-quantizers; must divide the dimension
    refine_factor: int = 4  # IVF-PQ re-scores k*refine exact vectors
    seed: int = 0  # training sample, so rebuilding the same catalog gives the same index


class AnnIndex:
    def __init__(self, index: faiss.IndexIDMap2, kind: str, config: AnnConfig) -> None:
        self.index = index
        self.kind = kind
        self.config = config
        self._apply_search_params()

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: np.ndarray,
        kind: Kind = "auto",
        config: AnnConfig | None = None,
        progress: Progress | None = None,
    ) -> AnnIndex:
        """Index `vectors` (n, d) under the caller's `ids`; `progress` sees each phase."""
        config = config or AnnConfig()
        vectors = _as_matrix(vectors, "vectors")
        ids = _as_ids(ids, len(vectors))
        n, dim = vectors.shape
        if kind == "auto":
            # measured at 1M items (bench/retrieval_latency): IVF-PQ with exact re-scoring
            # builds 3x faster than HNSW in half the memory, at equal or better recall
            kind = "exact" if n <= config.exact_max_items else "ivfpq"
        if kind == "exact":
            inner: faiss.Index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
        elif kind == "ivfpq":
            inner = _trained_ivfpq(vectors, config, progress)
        else:
            raise ValueError(f"unknown index kind {kind!r}; expected 'auto' or one of {KINDS}")
        index = cls(faiss.IndexIDMap2(inner), kind, config)
        index._add_chunked(vectors, ids, progress)
        return index

    def _apply_search_params(self) -> None:
        """Search knobs are not all serialized by faiss, so they are set from the config."""
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexRefine):
            inner.k_factor = float(self.config.refine_factor)
            faiss.extract_index_ivf(inner.base_index).nprobe = self.config.ivf_nprobe

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k), best first; ids are -1 where fewer exist."""
        queries = _as_matrix(np.atleast_2d(queries), "queries", self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        params = None
        if self.kind == "hnsw":
            # HNSW returns fewer than k results when efSearch < k; per-call params
            # keep concurrent searches with different k from racing on shared state
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.hnsw_ef_search, k))
        return self.index.search(queries, k, params=params)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add new items in place (no retraining; IVF-PQ uses its trained codebooks)."""
        vectors = _as_matrix(np.atleast_2d(vectors), "vectors", self.dim)
        ids = _as_ids(np.atleast_1d(ids), len(vectors))
        # a repeated id would come back twice from every search that finds it
        clash = np.intersect1d(ids, faiss.vector_to_array(self.index.id_map))
        if len(clash):
            raise ValueError(f"ids already in the index: {clash[:5].tolist()}")
        self._add_chunked(vectors, ids, None)

    def _add_chunked(self, vectors: np.ndarray, ids: np.ndarray, progress: Progress | None) -> None:
        if progress is not None:
            progress("add", 0, len(vectors))
        for start in range(0, len(vectors), ADD_CHUNK):
            stop = start + ADD_CHUNK
            self.index.add_with_ids(vectors[start:stop], ids[start:stop])
            if progress is not None:
                progress("add", min(stop, len(vectors)), len(vectors))

    def save(self, path: Path) -> None:
        """Writes the faiss index to `path` and the kind and config beside it (.json)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(path))
        meta = {"kind": self.kind, **asdict(self.config)}
        path.with_suffix(".json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path) -> AnnIndex:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        kind = meta.pop("kind")
        known = {f.name for f in fields(AnnConfig)}  # tolerate knobs from other versions
        config = AnnConfig(**{k: v for k, v in meta.items() if k in known})
        return cls(faiss.read_index(str(path)), kind, config)


def _trained_ivfpq(
    vectors: np.ndarray, config: AnnConfig, progress: Progress | None
) -> faiss.Index:
    """IVF-PQ whose candidates are re-scored exactly: PQ alone loses too much recall."""
    n, dim = vectors.shape
    if dim % config.pq_bytes:
        raise ValueError(f"pq_bytes={config.pq_bytes} must divide the dimension {dim}")
    if n < MIN_IVFPQ_ITEMS:
        raise ValueError(
            f"ivfpq needs at least {MIN_IVFPQ_ITEMS} vectors to train, got {n}; use exact"
        )
    # every k-means (coarse lists and PQ codebooks) gets >= 39 points per centroid
    nbits = min(PQ_NBITS, int(np.log2(n / MIN_POINTS_PER_LIST)))
    lists = ivf_lists_for(n, config)
    sample_size = min(n, max(lists * config.ivf_train_per_list, 2**nbits * 64))
    sample = np.random.default_rng(config.seed).choice(n, sample_size, replace=False)
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFPQ(
        quantizer, dim, lists, config.pq_bytes, nbits, faiss.METRIC_INNER_PRODUCT
    )
    ivf.cp.seed = config.seed
    if progress is not None:
        progress("train", 0, 1)
    ivf.train(vectors[np.sort(sample)])
    if progress is not None:
        progress("train", 1, 1)
    return faiss.IndexRefineFlat(ivf)


def ivf_lists_for(n: int, config: AnnConfig) -> int:
    """Inverted lists for n items: about 4*sqrt(n) (faiss's rule of thumb) unless set,
    but never so many that a list gets fewer than 39 training points."""
    lists = config.ivf_lists or int(4 * np.sqrt(n))
    return max(1, min(lists, n // MIN_POINTS_PER_LIST))


def _as_matrix(vectors: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D (n, d) array, got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"{name} have dimension {vectors.shape[1]}, the index has {dim}")
    if not np.isfinite(vectors).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return vectors


def _as_ids(ids: np.ndarray, n: int) -> np.ndarray:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) != n:
        raise ValueError(f"need one id per vector: {n} vectors, ids of shape {ids.shape}")
    if n and ids.min() < 0:
        raise ValueError("ids must be non-negative: faiss reports a missing result as -1")
    if len(np.unique(ids)) != n:
        raise ValueError("ids must be unique: a repeated id would be returned twice")
    return ids


def ann_recall(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k that the approximate top-k also returns."""
    if k < 1 or len(exact_ids) == 0:
        raise ValueError(f"need k >= 1 and at least one query, got k={k}, {len(exact_ids)}")
    hits = [
        len(set(a[:k].tolist()) & set(e[:k].tolist())) / k
        for a, e in zip(approx_ids, exact_ids, strict=True)
    ]
    return float(np.mean(hits))
