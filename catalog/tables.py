"""The normalized catalog: items, users and events with derived labels.

Label choices (MovieLens has explicit ratings only, on a 0.5-5 scale):

- watched   = any rating. A rating is the only evidence of consumption we have.
- completed = rating >= 3. A proxy: no play-completion signal exists, and people
  rarely rate a film they abandoned as neutral or better.
- liked     = rating >= 4. The usual "positive" threshold in the literature.
- regretted = rating <= 2. Watched and disliked: the outcome a feed should avoid.

Evaluation on the LOO-full protocol treats every rating as an implicit positive
(watched), as the public protocol does; the other labels feed the ranker.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from catalog import sources
from catalog.errors import DataError
from catalog.movielens import load_ml_100k, load_ml_latest_small
from catalog.paths import HasDataSources, HasPaths
from catalog.tmdb import load_tmdb

SCHEMA_VERSION = 1
LIKE_THRESHOLD = 4.0
REGRET_THRESHOLD = 2.0
COMPLETE_THRESHOLD = 3.0
MAX_ORPHAN_SHARE = 0.001
log = logging.getLogger("marquee.catalog")
ITEM_COLUMNS = [
    "item_id",
    "title",
    "year",
    "genres",
    "overview",
    "tagline",
    "keywords",
    "tags",
    "language",
    "runtime",
    "popularity",
    "tmdb_id",
    "tmdb_popularity",
    "vote_average",
    "vote_count",
]


@dataclass(frozen=True)
class Catalog:
    name: str
    version: str
    items: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for table in ("items", "users", "events"):
            getattr(self, table).to_parquet(folder / f"{table}.parquet", index=False)
        manifest = {
            "name": self.name,
            "version": self.version,
            "schema": SCHEMA_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "counts": {t: len(getattr(self, t)) for t in ("items", "users", "events")},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def read(cls, folder: Path) -> Catalog:
        manifest = json.loads((folder / "manifest.json").read_text())
        tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in ("items", "users", "events")}
        for col in ("genres", "keywords", "tags"):
            tables["items"][col] = tables["items"][col].map(list)
        return cls(name=manifest["name"], version=manifest["version"], **tables)


def add_labels(events: pd.DataFrame) -> pd.DataFrame:
    out = events.copy()
    out["watched"] = True
    out["completed"] = out["rating"] >= COMPLETE_THRESHOLD
    out["liked"] = out["rating"] >= LIKE_THRESHOLD
    out["regretted"] = out["rating"] <= REGRET_THRESHOLD
    return out


def _dedupe_events(events: pd.DataFrame) -> pd.DataFrame:
    """One event per (user, item): the latest rating wins, as a re-rating replaces the old."""
    ordered = events.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    return ordered.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)


def _drop_orphans(events: pd.DataFrame, items: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Drop ratings of items whose catalog row was unreadable; fail if that is not rare."""
    unknown = ~events["item_id"].isin(items["item_id"])
    n_bad = int(unknown.sum())
    if n_bad == 0:
        return events
    example = int(events.loc[unknown, "item_id"].iloc[0])
    message = f"{n_bad} ratings refer to item ids missing from the catalog (e.g. {example})"
    if n_bad > MAX_ORPHAN_SHARE * len(events):
        raise DataError(folder, message)
    log.warning("%s: dropped %s", folder, message)
    return events.loc[~unknown].reset_index(drop=True)


def _join_tmdb(items: pd.DataFrame, tmdb: pd.DataFrame | None) -> pd.DataFrame:
    if tmdb is None:
        tmdb = pd.DataFrame(columns=["tmdb_id"]).astype({"tmdb_id": "Int64"})
    tmdb = tmdb.astype({"tmdb_id": "Int64"})
    merged = items.merge(tmdb, on="tmdb_id", how="left")
    for col in (
        "overview",
        "tagline",
        "keywords",
        "language",
        "runtime",
        "tmdb_popularity",
        "vote_average",
        "vote_count",
    ):
        if col not in merged:
            merged[col] = None
    merged["overview"] = merged["overview"].fillna("").astype(str)
    merged["tagline"] = merged["tagline"].fillna("").astype(str)
    merged["keywords"] = [list(k) if isinstance(k, list) else [] for k in merged["keywords"]]
    merged["language"] = merged["language"].astype("string")
    merged["runtime"] = pd.to_numeric(merged["runtime"]).where(lambda s: s > 0).astype("Float64")
    for col in ("tmdb_popularity", "vote_average"):
        merged[col] = pd.to_numeric(merged[col]).astype("Float64")
    merged["vote_count"] = pd.to_numeric(merged["vote_count"]).astype("Int64")
    return merged


def build_catalog(name: str, settings: HasDataSources) -> Catalog:
    """Read raw files for `name` (download if needed) and normalize them."""
    if name not in sources.RATING_DATASETS:
        raise DataError(name, f"not a rating dataset; choose one of {sources.RATING_DATASETS}")
    folder = sources.resolve(name, settings)
    loader = load_ml_latest_small if name == "ml-latest-small" else load_ml_100k
    items, users, events = loader(folder)

    tmdb = None
    if name == "ml-latest-small" and sources.local_copy("tmdb-5000", settings) is not None:
        tmdb = load_tmdb(sources.resolve("tmdb-5000", settings))
    items = _join_tmdb(items, tmdb)

    events = _drop_orphans(events, items, folder)
    events = add_labels(_dedupe_events(events))
    counts = events.groupby("item_id").size()
    items["popularity"] = items["item_id"].map(counts).fillna(0).astype("int64")
    users = users.merge(
        events.groupby("user_id").size().rename("n_events").reset_index(), on="user_id", how="left"
    )
    users["n_events"] = users["n_events"].fillna(0).astype("int64")
    events = events.sort_values(["user_id", "timestamp", "item_id"]).reset_index(drop=True)
    digest = hashlib.sha256(
        json.dumps([SCHEMA_VERSION, name, tmdb is not None, len(events)]).encode()
        + pd.util.hash_pandas_object(events[["user_id", "item_id", "timestamp"]]).values.tobytes()
    ).hexdigest()[:12]
    return Catalog(name, digest, items[ITEM_COLUMNS].reset_index(drop=True), users, events)


def catalog_dir(name: str, settings: HasPaths) -> Path:
    return Path(settings.artifacts_dir) / "catalog" / name


def load_catalog(name: str, settings: HasDataSources, rebuild: bool = False) -> Catalog:
    """The prepared catalog for `name`, built and cached under artifacts/ on first use."""
    folder = catalog_dir(name, settings)
    manifest = folder / "manifest.json"
    if not rebuild and manifest.is_file():
        meta = json.loads(manifest.read_text())
        if meta.get("schema") == SCHEMA_VERSION:
            return Catalog.read(folder)
    catalog = build_catalog(name, settings)
    catalog.save(folder)
    return catalog
