"""Runtime settings, read from `MARQUEE_*` environment variables.

One settings object keeps every path and endpoint overridable without code changes:
CI points `MARQUEE_DATA_DIR` at a local copy of the datasets, tests point the
download URL at a loopback server.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARQUEE_", env_file=".env", extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Folder holding ml-latest-small/, ml-100k/ and tmdb-5000/. "
        "When unset (or a dataset is missing there) MovieLens is downloaded.",
    )
    download_base_url: str = Field(
        default="https://files.grouplens.org/datasets/movielens",
        description="Where `<dataset>.zip` is fetched from when no local copy exists.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "marquee",
        description="Downloaded and verified datasets are extracted here.",
    )
    artifacts_dir: Path = Field(
        default=Path("artifacts"),
        description="Versioned outputs: catalog tables, models, indexes, reports.",
    )
    seed: int = 42
    dataset: str = Field(default="ml-latest-small", description="Catalog the service serves.")
    redis_url: str | None = Field(
        default=None,
        description="Online feature store and event stream, e.g. redis://127.0.0.1:6379/0. "
        "Unset: an in-process store and event log (one process, nothing survives a restart).",
    )
    redis_prefix: str = Field(default="marquee", description="Namespace of every Redis key.")
    api_keys: str = Field(
        default="marquee-dev",
        description="Comma-separated keys accepted in the X-API-Key header. The default is "
        "for local development only; set your own before exposing the port.",
    )
    serve_worker: bool = Field(
        default=True, description="Run the nearline event consumer inside each API process."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    experiments_path: Path | None = Field(
        default=None, description="TOML experiment config; unset = the built-in default."
    )
    bundle_poll_s: float = Field(
        default=30.0, description="How often the service looks for a newer model bundle (0: never)."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
