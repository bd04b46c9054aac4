"""The download path, for real, against an HTTP server on 127.0.0.1.

The zips are built in the test from ../shared/data in the official layout
(`<name>/<file>` members), so the loader's URL building, streaming, extraction
and SHA-256 verification all run exactly as against GroupLens.
"""

from __future__ import annotations

import functools
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.settings import Settings
from catalog import sources
from catalog.errors import DataError
from catalog.tables import build_catalog


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/datasets/movielens", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(data_dir: Path, www: Path, name: str, tamper: str | None = None) -> Path:
    target = www / "datasets" / "movielens" / f"{name}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/", "")
        for path in sorted((data_dir / name).iterdir()):
            payload = path.read_bytes()
            if path.name == tamper:
                payload = payload.replace(b"4.0", b"3.5", 1)
            zf.writestr(f"{name}/{path.name}", payload)
    return target


def _settings(base_url: str, tmp_path: Path) -> Settings:
    # no local data dir: the loader must download
    return Settings(
        data_dir=None,
        download_base_url=base_url,
        cache_dir=tmp_path / "cache",
        artifacts_dir=tmp_path / "artifacts",
    )


def test_download_verifies_and_loads(server, data_dir: Path, tmp_path: Path) -> None:
    base_url, www = server
    _publish(data_dir, www, "ml-latest-small")
    settings = _settings(base_url, tmp_path)
    folder = sources.resolve("ml-latest-small", settings)
    assert folder == tmp_path / "cache" / "ml-latest-small"
    assert sorted(p.name for p in folder.iterdir()) == sorted(sources.ML_LATEST_SMALL.files)
    catalog = build_catalog("ml-latest-small", settings)
    assert len(catalog.events) == 100836
    # a second resolve uses the verified cache instead of the network
    (www / "datasets" / "movielens" / "ml-latest-small.zip").unlink()
    assert sources.resolve("ml-latest-small", settings) == folder


def test_download_of_ml_100k(server, data_dir: Path, tmp_path: Path) -> None:
    base_url, www = server
    _publish(data_dir, www, "ml-100k")
    catalog = build_catalog("ml-100k", _settings(base_url, tmp_path))
    assert len(catalog.users) == 943


def test_checksum_mismatch_is_rejected_and_nothing_is_cached(
    server, data_dir: Path, tmp_path: Path
) -> None:
    base_url, www = server
    _publish(data_dir, www, "ml-latest-small", tamper="ratings.csv")
    with pytest.raises(DataError, match="SHA-256 mismatch") as err:
        sources.resolve("ml-latest-small", _settings(base_url, tmp_path))
    assert err.value.path.name == "ratings.csv"
    assert not (tmp_path / "cache" / "ml-latest-small").exists()


def test_truncated_zip_is_rejected(server, data_dir: Path, tmp_path: Path) -> None:
    base_url, www = server
    archive = _publish(data_dir, www, "ml-latest-small")
    archive.write_bytes(archive.read_bytes()[:200_000])
    with pytest.raises(DataError, match="zip"):
        sources.resolve("ml-latest-small", _settings(base_url, tmp_path))
    assert not (tmp_path / "cache" / "ml-latest-small").exists()


def test_http_error_is_reported(server, tmp_path: Path) -> None:
    base_url, _ = server
    with pytest.raises(DataError, match="HTTP 404") as err:
        sources.resolve("ml-latest-small", _settings(base_url, tmp_path))
    assert str(err.value.path).endswith("ml-latest-small.zip")


def test_tmdb_has_no_download_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no official download"):
        sources.resolve("tmdb-5000", _settings("http://127.0.0.1:9", tmp_path))
