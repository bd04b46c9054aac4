"""Fetch an official dataset zip, verify every file we read, extract atomically."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from catalog.errors import DataError
from catalog.sources import DatasetSpec

_CHUNK = 1 << 16


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            columns = (
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
            )
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task(f"download {url.rsplit('/', 1)[-1]}", total=total)
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    progress.advance(task, len(block))
    except urllib.error.HTTPError as exc:
        raise DataError(url, f"download failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(url, f"download failed: {exc}") from None


def _extract_verified(archive: Path, ds: DatasetSpec, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(archive, "downloaded file is not a valid zip (truncated?)") from None
    with zf:
        names = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
        dest.mkdir(parents=True, exist_ok=True)
        for fname, expected in ds.files.items():
            member = names.get(fname)
            if member is None:
                raise DataError(archive, f"zip has no member named {fname}")
            target = dest / fname
            try:
                with zf.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise DataError(archive, f"cannot extract {fname}: {exc}") from None
            actual = sha256_file(target)
            if actual != expected:
                raise DataError(
                    target, f"SHA-256 mismatch: expected {expected[:12]}…, got {actual[:12]}…"
                )


def download_dataset(
    ds: DatasetSpec, base_url: str, cache_dir: Path, timeout: float = 60.0
) -> Path:
    """Download `ds` into `cache_dir/<name>`; nothing is left behind unless every file verifies."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / ds.name
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{ds.name}-") as tmp:
        archive = Path(tmp) / f"{ds.name}.zip"
        _fetch(ds.url(base_url), archive, timeout)
        staging = Path(tmp) / ds.name
        _extract_verified(archive, ds, staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    return final
