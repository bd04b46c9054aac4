"""Where each dataset lives and what its files must hash to.

The SHA-256 digests are those of the files inside the official GroupLens zips.
Verifying the extracted members (rather than the zip) means the same manifest
checks a download and a local copy, and a re-zipped mirror still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.errors import DataError
from catalog.paths import HasDataSources, HasPaths


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: dict[str, str]  # relative file name -> sha256
    downloadable: bool = True

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.name}.zip"


ML_LATEST_SMALL = DatasetSpec(
    name="ml-latest-small",
    files={
        "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
        "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
        "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    },
)
ML_100K = DatasetSpec(
    name="ml-100k",
    files={
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.item": "a4a4510a66ae9f7f208dbce7ebabc119533be5389bcc73090d21ea7af595933a",
        "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    },
)
# TMDB 5000 has no official direct download (it is distributed through Kaggle),
# so it is read only from a local folder and is optional enrichment.
TMDB_5000 = DatasetSpec(
    name="tmdb-5000",
    files={
        "tmdb_5000_movies.csv": "1e0584a8dd374120e4ed4f2b81f0d2bd0eb95a554708e4a350d00ed5c46d2825",
    },
    downloadable=False,
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (ML_LATEST_SMALL, ML_100K, TMDB_5000)}
RATING_DATASETS = ("ml-latest-small", "ml-100k")


def spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        known = ", ".join(sorted(SPECS))
        raise DataError(name, f"unknown dataset; known datasets: {known}") from None


def local_copy(name: str, settings: HasPaths) -> Path | None:
    """The folder of a complete local copy, looked up in the data dir then the cache."""
    ds = spec(name)
    for root in (settings.data_dir, settings.cache_dir):
        if root is None:
            continue
        folder = Path(root) / ds.name
        if folder.is_dir() and all((folder / f).is_file() for f in ds.files):
            return folder
    return None


def resolve(name: str, settings: HasDataSources) -> Path:
    """Return a folder holding the dataset, downloading and verifying it if needed."""
    found = local_copy(name, settings)
    if found is not None:
        return found
    ds = spec(name)
    if settings.data_dir is not None and (Path(settings.data_dir) / ds.name).is_dir():
        folder = Path(settings.data_dir) / ds.name
        missing = [f for f in ds.files if not (folder / f).is_file()]
        raise DataError(folder / missing[0], "file is missing from the local dataset copy")
    if not ds.downloadable:
        where = settings.data_dir or "MARQUEE_DATA_DIR"
        raise DataError(
            Path(str(where)) / ds.name,
            "dataset not found and it has no official download; place it in MARQUEE_DATA_DIR",
        )
    from catalog.download import download_dataset

    return download_dataset(ds, settings.download_base_url, settings.cache_dir)
