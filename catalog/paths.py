"""Where data lives on disk, as the lower layers see it.

Only `app/` reads environment settings. The stages below it take any object with
these attributes, so `app.settings.Settings` is passed straight through (it fits
the protocols structurally) while tests and tools can pass a plain `DataPaths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_DOWNLOAD_URL = "https://files.grouplens.org/datasets/movielens"


class HasPaths(Protocol):
    """The three folders every stage reads or writes."""

    @property
    def data_dir(self) -> Path | None: ...

    @property
    def artifacts_dir(self) -> Path: ...

    @property
    def cache_dir(self) -> Path: ...


class HasDataSources(HasPaths, Protocol):
    """Paths plus the mirror that missing datasets are downloaded from."""

    @property
    def download_base_url(self) -> str: ...


class HasTrainingSettings(HasPaths, Protocol):
    """Paths plus the seed that production training is reproducible from."""

    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class DataPaths:
    """A plain value satisfying every protocol above, for callers without `Settings`."""

    data_dir: Path | None = None
    artifacts_dir: Path = Path("artifacts")
    cache_dir: Path = Path.home() / ".cache" / "marquee"
    download_base_url: str = DEFAULT_DOWNLOAD_URL
    seed: int = 42
