"""Catalog tables from the real datasets, and clear errors for broken files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings
from catalog.errors import DataError
from catalog.movielens import split_title
from catalog.tables import build_catalog

from .conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Matrix, The (1999)", "The Matrix", 1999),
        (
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "The City of Lost Children (Cité des enfants perdus, La)",
            1995,
        ),
        ("Babylon 5", "Babylon 5", None),
        ("Fawlty Towers (1975-1979)", "Fawlty Towers", 1975),
    ],
)
def test_split_title(raw: str, title: str, year: int | None) -> None:
    assert split_title(raw) == (title, year)


def test_ml_latest_small_tables(ml_small) -> None:
    items, events = ml_small.items, ml_small.events
    assert len(items) == 9742 and len(events) == 100836 and len(ml_small.users) == 610
    assert items["item_id"].is_unique
    toy = items.set_index("item_id").loc[1]
    assert toy["title"] == "Toy Story" and toy["year"] == 1995
    assert "Animation" in toy["genres"] and "pixar" in toy["tags"]
    assert "toy" in toy["keywords"] and toy["overview"].startswith("Led by Woody")
    # TMDB joins through links.csv for ~3.5k movies
    assert 3400 <= int((items["overview"] != "").sum()) <= 3600
    assert items["popularity"].sum() == len(events)


def test_labels_follow_documented_thresholds(ml_small) -> None:
    ev = ml_small.events
    assert ev["watched"].all()
    assert (ev["liked"] == (ev["rating"] >= 4)).all()
    assert (ev["regretted"] == (ev["rating"] <= 2)).all()
    assert (ev["completed"] == (ev["rating"] >= 3)).all()
    assert not (ev["liked"] & ev["regretted"]).any()


def test_ml_100k_users_carry_demographics(ml_100k) -> None:
    users = ml_100k.users.set_index("user_id")
    assert len(users) == 943
    assert users.loc[1, ["age", "gender", "occupation"]].tolist() == [24, "M", "technician"]
    assert set(users["gender"]) == {"M", "F"}
    items = ml_100k.items
    assert not items["genres"].map(lambda g: "Children's" in g).any()  # normalized spelling
    assert ml_100k.events["item_id"].isin(items["item_id"]).all()


def test_saved_tables_round_trip(ml_small, tmp_path: Path) -> None:
    from catalog.tables import Catalog

    ml_small.save(tmp_path)
    again = Catalog.read(tmp_path)
    assert again.version == ml_small.version
    assert again.items["genres"].tolist() == ml_small.items["genres"].tolist()
    assert len(again.events) == len(ml_small.events)


@pytest.fixture()
def broken_copy(data_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of ml-latest-small to damage."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "ml-latest-small", root / "ml-latest-small")
    return root


def _settings(root: Path, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=root,
        artifacts_dir=tmp_path / "a",
        cache_dir=tmp_path / "c",
        download_base_url="http://127.0.0.1:9",
    )


def _rewrite_line(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = text + "\n"
    path.write_text("".join(lines))


def test_malformed_value_names_file_and_line(broken_copy: Path, tmp_path: Path) -> None:
    ratings = broken_copy / "ml-latest-small" / "ratings.csv"
    _rewrite_line(ratings, 5, "1,50,five,964982931")
    with pytest.raises(DataError) as err:
        build_catalog("ml-latest-small", _settings(broken_copy, tmp_path))
    assert err.value.path == ratings and err.value.line == 5
    assert "rating" in str(err.value) and "five" in str(err.value)


def test_wrong_field_count_names_file_and_line(broken_copy: Path, tmp_path: Path) -> None:
    movies = broken_copy / "ml-latest-small" / "movies.csv"
    _rewrite_line(movies, 3, "2,Jumanji (1995)")
    with pytest.raises(DataError) as err:
        build_catalog("ml-latest-small", _settings(broken_copy, tmp_path))
    assert err.value.path == movies and err.value.line == 3


def test_truncated_file_is_reported(broken_copy: Path, tmp_path: Path) -> None:
    ratings = broken_copy / "ml-latest-small" / "ratings.csv"
    data = ratings.read_bytes()
    ratings.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as err:
        build_catalog("ml-latest-small", _settings(broken_copy, tmp_path))
    assert err.value.line == data[: len(data) // 2].count(b"\n") + 1


def test_missing_file_is_named(broken_copy: Path, tmp_path: Path) -> None:
    (broken_copy / "ml-latest-small" / "tags.csv").unlink()
    with pytest.raises(DataError, match="missing") as err:
        build_catalog("ml-latest-small", _settings(broken_copy, tmp_path))
    assert err.value.path.name == "tags.csv"


def test_bad_tmdb_json_names_the_line(broken_copy: Path, data_dir: Path, tmp_path: Path) -> None:
    tmdb = broken_copy / "tmdb-5000" / "tmdb_5000_movies.csv"
    tmdb.parent.mkdir()
    text = (data_dir / "tmdb-5000" / "tmdb_5000_movies.csv").read_text()
    # the CSV doubles quotes inside fields; break the first record's genres JSON
    tmdb.write_text(text.replace('""name"": ""Action""', '""nme"": ""Action""', 1))
    with pytest.raises(DataError, match="genres") as err:
        build_catalog("ml-latest-small", _settings(broken_copy, tmp_path))
    assert err.value.path == tmdb and err.value.line == 2


def test_cli_reports_data_errors_without_traceback(broken_copy: Path, tmp_path: Path) -> None:
    _rewrite_line(broken_copy / "ml-latest-small" / "ratings.csv", 7, "1,x,4.0,1")
    env = {
        "MARQUEE_DATA_DIR": str(broken_copy),
        "MARQUEE_ARTIFACTS_DIR": str(tmp_path / "a"),
        "MARQUEE_CACHE_DIR": str(tmp_path / "c"),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "data", "prepare", "--dataset", "ml-latest-small"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "ratings.csv:7" in output.replace("\n", "")
    assert "Traceback" not in output
