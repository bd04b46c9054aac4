"""TMDB 5000 metadata: the text (overview, keywords, tagline) MovieLens lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from catalog.readers import opt_float, read_table

TMDB_HEADER = [
    "budget",
    "genres",
    "homepage",
    "id",
    "keywords",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "production_companies",
    "production_countries",
    "release_date",
    "revenue",
    "runtime",
    "spoken_languages",
    "status",
    "tagline",
    "title",
    "vote_average",
    "vote_count",
]
_USED = {
    "genres",
    "id",
    "keywords",
    "original_language",
    "overview",
    "popularity",
    "runtime",
    "tagline",
    "vote_average",
    "vote_count",
}


def _names(value: str) -> list[str]:
    """'[{"id": 1, "name": "x"}]' -> ['x']; raises ValueError on anything else."""
    parsed = json.loads(value) if value.strip() else []
    if not isinstance(parsed, list) or not all(isinstance(d, dict) and "name" in d for d in parsed):
        raise ValueError("expected a JSON list of {name: ...} objects")
    return [str(d["name"]) for d in parsed]


def load_tmdb(folder: Path) -> pd.DataFrame:
    parsers = {
        "genres": _names,
        "id": int,
        "keywords": _names,
        "popularity": float,
        "runtime": opt_float,
        "vote_average": opt_float,
        "vote_count": int,
    }
    columns = [(name, parsers.get(name, str)) for name in TMDB_HEADER]
    raw = read_table(folder / "tmdb_5000_movies.csv", columns, header=TMDB_HEADER)
    raw = raw[[c for c in TMDB_HEADER if c in _USED]]
    return raw.rename(
        columns={
            "id": "tmdb_id",
            "genres": "tmdb_genres",
            "original_language": "language",
            "popularity": "tmdb_popularity",
        }
    ).drop_duplicates("tmdb_id")
