"""The CLI end to end, as a user runs it: real process, real data, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO_ROOT


def _marquee(*args: str, data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MARQUEE_DATA_DIR": str(data_dir),
        "MARQUEE_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "MARQUEE_CACHE_DIR": str(tmp_path / "cache"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )


def test_eval_baselines_writes_report(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    proc = _marquee(
        "eval",
        "baselines",
        "--models",
        "MostPopular",
        "--out",
        str(out),
        data_dir=data_dir,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "610 users" in proc.stdout and "MostPopular" in proc.stdout
    payload = json.loads((out / "baselines-ml-latest-small.json").read_text())
    assert payload["split"]["users"] == 610
    assert payload["results"][0]["test"]["recall@10"] > 0
    assert (out / "baselines-ml-latest-small.png").stat().st_size > 0


def test_unknown_choices_are_clear_errors(data_dir: Path, tmp_path: Path) -> None:
    for args, message in [
        (("eval", "baselines", "--models", "Nope"), "unknown baseline"),
        (("data", "prepare", "--dataset", "ml-1b"), "unknown dataset"),
        (("bench", "no-such-bench"), "no benchmark"),
    ]:
        proc = _marquee(*args, data_dir=data_dir, tmp_path=tmp_path)
        assert proc.returncode == 2, args
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
