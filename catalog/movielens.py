"""Readers for the two MovieLens releases, normalized to one vocabulary.

ml-100k spells some genres differently ("Children's"); both are mapped to the
ml-latest-small spelling so a genre means the same thing across datasets.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd

from catalog.errors import DataError
from catalog.readers import opt_int, read_table

_TITLE = re.compile(r"^(?P<title>.*?)\s*(?:\((?P<year>\d{4})(?:[-\u2013]\d{0,4})?\))?\s*$")
_ARTICLE = re.compile(
    r"^(?P<head>.*?), (?P<art>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El|Los|Las)(?P<tail>\s*\(.*\))?$"
)
GENRE_ALIASES = {"Children's": "Children", "(no genres listed)": ""}


def split_title(raw: str) -> tuple[str, int | None]:
    """'Matrix, The (1999)' -> ('The Matrix', 1999): display form plus release year."""
    match = _TITLE.match(raw.strip())
    title = match.group("title") if match else raw.strip()
    year = int(match.group("year")) if match and match.group("year") else None
    art = _ARTICLE.match(title)
    if art:
        sep = "" if art.group("art").endswith("'") else " "
        title = f"{art.group('art')}{sep}{art.group('head')}{art.group('tail') or ''}"
    return title, year


def normalize_genres(genres: list[str]) -> list[str]:
    out = [GENRE_ALIASES.get(g, g) for g in genres]
    return [g for g in out if g]


def _tags_by_item(tags: pd.DataFrame) -> dict[int, list[str]]:
    """Unique lower-cased tags per item, most used first."""
    per_item: dict[int, Counter[str]] = {}
    for item, tag in zip(tags["item_id"], tags["tag"], strict=True):
        clean = tag.strip().lower()
        if clean:
            per_item.setdefault(int(item), Counter())[clean] += 1
    return {item: [t for t, _ in counts.most_common()] for item, counts in per_item.items()}


def load_ml_latest_small(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (items, users, events) with MovieLens ids kept as item and user ids."""
    movies = read_table(
        folder / "movies.csv",
        [("item_id", int), ("raw_title", str), ("raw_genres", str)],
        header=["movieId", "title", "genres"],
    )
    ratings = read_table(
        folder / "ratings.csv",
        [("user_id", int), ("item_id", int), ("rating", float), ("timestamp", int)],
        header=["userId", "movieId", "rating", "timestamp"],
    )
    tags = read_table(
        folder / "tags.csv",
        [("user_id", int), ("item_id", int), ("tag", str), ("timestamp", int)],
        header=["userId", "movieId", "tag", "timestamp"],
    )
    links = read_table(
        folder / "links.csv",
        [("item_id", int), ("imdb_id", str), ("tmdb_id", opt_int)],
        header=["movieId", "imdbId", "tmdbId"],
    )
    split = [split_title(t) for t in movies["raw_title"]]
    tag_map = _tags_by_item(tags)
    items = pd.DataFrame(
        {
            "item_id": movies["item_id"].astype("int64"),
            "title": [t for t, _ in split],
            "year": pd.array([y for _, y in split], dtype="Int64"),
            "genres": [normalize_genres(g.split("|")) for g in movies["raw_genres"]],
            "tags": [tag_map.get(int(i), []) for i in movies["item_id"]],
        }
    )
    tmdb = links.set_index("item_id")["tmdb_id"]
    items["tmdb_id"] = pd.array(items["item_id"].map(tmdb), dtype="Int64")
    users = pd.DataFrame({"user_id": sorted(ratings["user_id"].unique())})
    return items, users, ratings


def _year_from_release(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    return datetime.strptime(value, "%d-%b-%Y").year


def load_ml_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (items, users, events); users carry age, gender, occupation and zip."""
    genre_rows = read_table(folder / "u.genre", [("name", str), ("index", int)], delimiter="|")
    genre_names = genre_rows.sort_values("index")["name"].tolist()
    n_genres = len(genre_names)
    raw_items = read_table(
        folder / "u.item",
        [
            ("item_id", int),
            ("raw_title", str),
            ("release", _year_from_release),
            ("video_release", str),
            ("url", str),
        ],
        delimiter="|",
        encoding="latin-1",
        extra_fields=n_genres,
        tolerate_bad_rows=3,
    )
    flags = raw_items[[f"_extra{i}" for i in range(n_genres)]].to_numpy()
    if not set(flags.ravel()) <= {"0", "1"}:
        raise DataError(folder / "u.item", "genre flags must be 0 or 1")
    genres = [
        normalize_genres([genre_names[j] for j in range(n_genres) if row[j] == "1"])
        for row in flags
    ]
    genres = [[g for g in gs if g != "unknown"] for gs in genres]
    split = [split_title(t) for t in raw_items["raw_title"]]
    items = pd.DataFrame(
        {
            "item_id": raw_items["item_id"].astype("int64"),
            "title": [t for t, _ in split],
            "year": pd.array(
                [
                    y if y is not None else r
                    for (_, y), r in zip(split, raw_items["release"], strict=True)
                ],
                dtype="Int64",
            ),
            "genres": genres,
            "tags": [[] for _ in split],
            "tmdb_id": pd.array([None] * len(split), dtype="Int64"),
        }
    )
    users = read_table(
        folder / "u.user",
        [("user_id", int), ("age", int), ("gender", str), ("occupation", str), ("zip", str)],
        delimiter="|",
    )
    events = read_table(
        folder / "u.data",
        [("user_id", int), ("item_id", int), ("rating", float), ("timestamp", int)],
        delimiter="\t",
    )
    return items, users, events
