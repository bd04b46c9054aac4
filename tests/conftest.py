"""Shared fixtures: the research datasets live beside the checkout in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    configured = os.environ.get("MARQUEE_DATA_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for folder in candidates:
        if (folder / "ml-latest-small" / "ratings.csv").is_file():
            return folder
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("shared datasets not found (set MARQUEE_DATA_DIR)")
    return folder


@pytest.fixture(scope="session")
def settings(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("marquee")
    return Settings(data_dir=data_dir, artifacts_dir=root / "artifacts", cache_dir=root / "cache")


@pytest.fixture(scope="session")
def ml_small(settings: Settings):
    from catalog.tables import load_catalog

    return load_catalog("ml-latest-small", settings)


@pytest.fixture(scope="session")
def ml_100k(settings: Settings):
    from catalog.tables import load_catalog

    return load_catalog("ml-100k", settings)


@pytest.fixture(scope="session")
def loo_small(ml_small):
    from evaluation.splits import loo_full

    return loo_full(ml_small.events, "ml-latest-small")
