"""Benchmark outputs: a flat JSON per benchmark and its section of bench/RESULTS.md.

Both are written by the same run, so the committed Markdown and JSON cannot drift
apart (a test re-checks that every JSON figure appears in the Markdown section).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path("bench")
RESULTS_MD = BENCH_DIR / "RESULTS.md"


def write_result(
    name: str,
    metrics: dict[str, float | int],
    command: str,
    dataset: str,
    bench_dir: Path = BENCH_DIR,
) -> Path:
    path = bench_dir / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "benchmark": name,
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset,
        "metrics": metrics,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def update_results_md(name: str, section: str, path: Path = RESULTS_MD) -> None:
    """Replace (or append) the marked section for benchmark `name`."""
    start, end = _markers(name)
    block = f"{start}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    path.write_text(text)


def read_section(name: str, path: Path = RESULTS_MD) -> str:
    start, end = _markers(name)
    text = path.read_text()
    begin, finish = text.index(start), text.index(end)
    return text[begin + len(start) : finish]
