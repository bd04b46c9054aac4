"""Reports and committed benchmark results stay consistent."""

from __future__ import annotations

import json

import pytest

from evaluation.bench_io import read_section, update_results_md, write_result
from evaluation.report import TABLE_COLUMNS, Report
from evaluation.runner import ModelResult

from .conftest import REPO_ROOT


def _report() -> Report:
    metrics = {c: 0.1 + i / 100 for i, c in enumerate(TABLE_COLUMNS)}
    results = [
        ModelResult("A", {"l2": 5}, {"ndcg@10": 0.2}, metrics),
        ModelResult("B", {}, {"ndcg@10": 0.1}, {k: v / 2 for k, v in metrics.items()}),
    ]
    stats = {"protocol": "LOO-full, 5-core", "users": 3, "items": 4, "interactions": 9}
    return Report("Baselines", "toy", stats, results, "marquee eval baselines")


def test_report_writes_markdown_json_and_plot(tmp_path) -> None:
    paths = _report().save(tmp_path, "baselines-toy")
    markdown = paths["markdown"].read_text()
    assert "| A | l2=5 |" in markdown and "| B | - |" in markdown
    payload = json.loads(paths["json"].read_text())
    assert [r["name"] for r in payload["results"]] == ["A", "B"]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _report().flat_metrics()["B.recall@10"] == pytest.approx(0.06)


def test_results_section_is_replaced_not_duplicated(tmp_path) -> None:
    md = tmp_path / "RESULTS.md"
    update_results_md("x", "first", md)
    update_results_md("y", "other", md)
    update_results_md("x", "second", md)
    text = md.read_text()
    assert text.count("bench:x:start") == 1 and "second" in text and "first" not in text
    assert read_section("y", md).strip() == "other"
    path = write_result("x", {"m": 1.5}, "cmd", "toy", bench_dir=tmp_path)
    assert json.loads(path.read_text())["metrics"] == {"m": 1.5}


def test_committed_quality_results_match_results_md() -> None:
    payload = json.loads((REPO_ROOT / "bench/results/quality.json").read_text())
    section = read_section("quality", REPO_ROOT / "bench/RESULTS.md")
    assert payload["command"] in section
    metrics = payload["metrics"]
    models = {key.split(".")[0] for key in metrics if key.count(".") == 1 and "@" in key}
    models -= {"pool"}
    assert {"MostPopular", "ItemKNN", "EASE", "ALS-MF", "TwoTower"} <= models
    lines = section.splitlines()
    for model in models:
        row = next(line for line in lines if line.startswith(f"| {model} |"))
        for metric in TABLE_COLUMNS:
            assert f"{metrics[f'{model}.{metric}']:.4f}" in row, (model, metric)
    sources = {key.split(".")[1] for key in metrics if key.startswith("source.")}
    for name in sources:
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        assert f"{metrics[f'source.{name}.recall@500']:.4f}" in row, name
    pool_row = next(line for line in lines if line.startswith("| **merged pool**"))
    assert f"{metrics['pool.recall@500']:.4f}" in pool_row
    assert f"{payload['metrics']['split.users']} users" in section


@pytest.mark.parametrize(
    "name", ["feed_load", "like_to_feed", "chat_quality", "feed_cpu", "feed_guard"]
)
def test_committed_serving_results_match_results_md(name: str) -> None:
    payload = json.loads((REPO_ROOT / f"bench/results/{name}.json").read_text())
    section = read_section(name, REPO_ROOT / "bench/RESULTS.md")
    assert payload["command"] in section
    for metric, value in payload["metrics"].items():
        assert str(value) in section, metric
