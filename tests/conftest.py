"""Shared fixtures: the research datasets live beside the checkout in ../shared/data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings

from . import keys
from .requirements import missing

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
        missing("shared datasets not found (set MARQUEE_DATA_DIR)")
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
    from catalog.splits import loo_full

    return loo_full(ml_small.events, "ml-latest-small")


def run_marquee(artifacts: Path, data_dir: Path, *args: str, **env: str):
    """The CLI in a subprocess, as a user runs it, with its own artifacts folder."""
    full_env = {
        **os.environ,
        "MARQUEE_DATA_DIR": str(data_dir),
        "MARQUEE_ARTIFACTS_DIR": str(artifacts),
        "MARQUEE_CACHE_DIR": str(artifacts.parent / "cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        timeout=900,
    )


@pytest.fixture(scope="session")
def bundle_artifacts(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder per run; MARQUEE_TEST_ARTIFACTS names a folder kept between local
    runs instead (its test bundle is trained once and reused; CI never sets it)."""
    kept = os.environ.get("MARQUEE_TEST_ARTIFACTS")
    if kept:
        return Path(kept).resolve()
    return tmp_path_factory.mktemp("bundle") / "artifacts"


@pytest.fixture(scope="session")
def ml100k_bundle(bundle_artifacts: Path, data_dir: Path) -> tuple[Path, str]:
    """A small complete ml-100k bundle (1-epoch two-tower + ranker), trained through the CLI.

    Returns the bundle folder and the ranker command's output.
    """
    from retrieval.pipeline import latest_bundle

    folder = latest_bundle(Settings(artifacts_dir=bundle_artifacts), "ml-100k")
    log = folder / "ranker-output.txt" if folder is not None else None
    if log is not None and log.is_file():  # a kept folder (MARQUEE_TEST_ARTIFACTS)
        return folder, log.read_text()
    proc = run_marquee(
        bundle_artifacts,
        data_dir,
        "train",
        "retrieval",
        "--dataset",
        "ml-100k",
        "--max-epochs",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "validation recall@10" in proc.stdout
    ranker = run_marquee(bundle_artifacts, data_dir, "train", "ranker", "--dataset", "ml-100k")
    assert ranker.returncode == 0, ranker.stderr[-2000:]
    folder = latest_bundle(Settings(artifacts_dir=bundle_artifacts), "ml-100k")
    assert folder is not None
    (folder / "ranker-output.txt").write_text(ranker.stdout)
    return folder, ranker.stdout


@pytest.fixture(scope="session")
def serving_settings(ml100k_bundle: tuple[Path, str], bundle_artifacts: Path, data_dir: Path):
    """Service settings over the ml-100k test bundle, on real Redis under a unique prefix."""
    from .redis_util import URL, delete_prefix, redis_or_missing, unique_prefix

    client = redis_or_missing()
    prefix = unique_prefix()
    yield Settings(
        data_dir=data_dir,
        artifacts_dir=bundle_artifacts,
        cache_dir=bundle_artifacts.parent / "cache",
        dataset="ml-100k",
        redis_url=URL,
        redis_prefix=prefix,
        bundle_poll_s=0,
        # a loaded test machine must not turn LLM tests into budget tests (bench/ measures)
        chat_budget_ms=20000,
        api_keys=keys.API_KEYS,
        token_secret=keys.TOKEN_SECRET,
        rate_chat="600/minute",  # test_security sets tight limits where it tests them
    )
    delete_prefix(client, prefix)


@pytest.fixture(scope="session")
def api_service(serving_settings: Settings):
    from app.service import Service

    return Service.from_settings(serving_settings)


@pytest.fixture
def api(api_service):
    """A TestClient over the shared service (background loops and worker run while open)."""
    from fastapi.testclient import TestClient

    from ui.server import create_app

    with TestClient(create_app(api_service), headers={"X-API-Key": "marquee-dev"}) as client:
        yield client
