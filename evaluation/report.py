"""Side-by-side reports: a Markdown table for people, JSON for machines, a PNG to glance at."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluation.runner import ModelResult

# Published figures on the same LOO-full protocol (LlamaRec paper, Yue et al. 2023).
PUBLISHED = {
    "SASRec (published)": {"ndcg@10": 0.0522, "recall@10": 0.0993},
    "LRURec (published)": {"ndcg@10": 0.0705, "recall@10": 0.1426},
}
HEADLINE = ("recall@10", "ndcg@10", "mrr@10")
TABLE_COLUMNS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "ndcg@10",
    "mrr@10",
    "recall@20",
    "ndcg@20",
    "recall@50",
    "auc",
    "coverage@10",
    "novelty@10",
    "ild@10",
)


@dataclass
class Report:
    title: str
    dataset: str
    split_stats: dict[str, Any]
    results: list[ModelResult]
    command: str
    sections: list[str] = field(default_factory=list)  # extra Markdown, e.g. per-stage tables
    extra_metrics: dict[str, float] = field(default_factory=dict)  # flat, e.g. pool.recall@500
    extra_plots: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # suffix -> draw
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "dataset": self.dataset,
            "command": self.command,
            "created": self.created,
            "split": self.split_stats,
            "results": [asdict(r) for r in self.results],
            "extra_metrics": self.extra_metrics,
        }

    def flat_metrics(self) -> dict[str, float]:
        """`<model>.<metric>` -> value for every test metric (the benchmark JSON format)."""
        flat = {
            f"{r.name}.{metric}": round(value, 6)
            for r in self.results
            for metric, value in r.test.items()
        }
        flat.update({k: round(v, 6) for k, v in self.extra_metrics.items()})
        return flat

    def stats_markdown(self) -> str:
        s = self.split_stats
        return (
            f"Split: {s.get('protocol')} on `{self.dataset}`: {s.get('users')} users, "
            f"{s.get('items')} items, {s.get('interactions')} interactions after filtering "
            f"(raw: {s.get('raw_users')} users, {s.get('raw_items')} items, "
            f"{s.get('raw_interactions')} ratings)."
        )

    def table_markdown(self) -> str:
        header = "| model | params | " + " | ".join(TABLE_COLUMNS) + " | valid ndcg@10 |"
        rule = "|" + "---|" * (len(TABLE_COLUMNS) + 3)
        rows = [header, rule]
        for r in self.results:
            params = ", ".join(f"{k}={v}" for k, v in r.params.items() if k != "iterations") or "-"
            cells = " | ".join(f"{r.test.get(c, float('nan')):.4f}" for c in TABLE_COLUMNS)
            rows.append(f"| {r.name} | {params} | {cells} | {r.valid['ndcg@10']:.4f} |")
        return "\n".join(rows)

    def to_markdown(self) -> str:
        published = "; ".join(
            f"{name}: NDCG@10 {v['ndcg@10']}, Recall@10 {v['recall@10']}"
            for name, v in PUBLISHED.items()
        )
        return (
            "\n\n".join(
                [
                    f"# {self.title}",
                    f"Command: `{self.command}`  \nCreated: {self.created}",
                    self.stats_markdown(),
                    "Test metrics, full-catalog ranking with history excluded. Baselines: "
                    "hyperparameters chosen on validation NDCG@10, refitted on train+validation. "
                    "TwoTower: early-stopped on validation Recall@10, not refitted; its test "
                    "histories include the validation item.",
                    self.table_markdown(),
                    f"For orientation on this protocol, published: {published}.",
                ]
            )
            + "\n"
        )

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        names = [r.name for r in self.results]
        x = np.arange(len(names))
        width = 0.8 / len(HEADLINE)
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for j, metric in enumerate(HEADLINE):
            values = [r.test[metric] for r in self.results]
            bars = ax.bar(x + (j - 1) * width, values, width, label=metric)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        for (name, ref), style in zip(PUBLISHED.items(), (":", "--"), strict=True):
            ax.axhline(
                ref["ndcg@10"], color="grey", linestyle=style, linewidth=1, label=f"{name} ndcg@10"
            )
        ax.set_xticks(x, names)
        ax.set_ylabel("test metric")
        ax.set_title(f"{self.title} ({self.dataset}, {self.split_stats.get('protocol')})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def save(self, folder: Path, stem: str) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": folder / f"{stem}.md",
            "json": folder / f"{stem}.json",
            "plot": folder / f"{stem}.png",
        }
        paths["markdown"].write_text(self.to_markdown())
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=str))
        self.plot(paths["plot"])
        for suffix, draw in self.extra_plots.items():
            paths[suffix] = folder / f"{stem}-{suffix}.png"
            draw(paths[suffix])
        return paths
