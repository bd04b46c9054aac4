"""Baselines, the two-tower model and every candidate source, measured in one run.

One run, one split: the two-tower row sits next to EASE and the other baselines
trained on the same data, and the retrieval section reports each source and the
merged pool on the same test users.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.progress import Progress

from catalog.paths import HasDataSources
from catalog.splits import loo_full
from catalog.tables import load_catalog
from evaluation.baseline_run import check_baselines, tune_baselines
from evaluation.report import Report
from evaluation.retrieval_eval import RECALL_KS, choose_quotas, evaluate_pool
from evaluation.runner import genre_matrix
from evaluation.two_tower_eval import two_tower_result
from retrieval.offline import train_on_split
from retrieval.offline_pools import build_sources, contexts, run_sources, stage_targets
from retrieval.pipeline import text_vectors
from retrieval.quotas import QUOTA_PRESETS
from retrieval.training import TrainConfig


def _source_section(
    per_source: dict[str, dict[str, float]],
    pool: dict[str, float],
    preset: str,
    valid_scores: dict[str, float],
) -> str:
    head = "| source | " + " | ".join(f"Recall@{k}" for k in RECALL_KS) + " | median ms |"
    rows = [head, "|" + "---|" * (len(RECALL_KS) + 2)]
    for name, stats in per_source.items():
        cells = " | ".join(f"{stats[f'recall@{k}']:.4f}" for k in RECALL_KS)
        rows.append(f"| {name} | {cells} | {stats['median_ms']:.2f} |")
    cells = " | ".join(f"{pool[f'recall@{k}']:.4f}" for k in RECALL_KS)
    rows.append(f"| **merged pool** | {cells} | - |")
    quotas = ", ".join(f"{k} {v}" for k, v in QUOTA_PRESETS[preset].items())
    tried = ", ".join(f"{p} {v:.4f}" for p, v in valid_scores.items())
    return "\n\n".join(
        [
            "## Retrieval: candidate sources and the merged pool (test)",
            "\n".join(rows),
            f"Pool of {int(pool['mean_size'])} candidates on average; quotas `{preset}` "
            f"({quotas}) chosen on validation pool Recall@500 ({tried}). Per-source latency "
            "is one request at a time, sequentially; the merger runs sources concurrently.",
        ]
    )


def run_quality_report(
    dataset: str,
    settings: HasDataSources,
    command: str = "",
    baselines: Sequence[str] | None = None,
    train_config: TrainConfig | None = None,
    *,
    seed: int,
) -> Report:
    """The full quality report; `seed` (from the app's settings) seeds two-tower training."""
    chosen = check_baselines(baselines)
    catalog = load_catalog(dataset, settings)
    split = loo_full(catalog.events, dataset)
    genres = genre_matrix(catalog.items, split.item_ids)
    with Progress(transient=True) as progress:
        results = tune_baselines(split, genres, chosen, progress)
        task = progress.add_task("embedding item text", total=None)
        text = text_vectors(catalog, settings)
        config = train_config or TrainConfig(seed=seed)
        progress.update(task, description="training two-tower", total=config.max_epochs)

        def epoch_done(epoch: int, loss: float, metrics: dict[str, float]) -> None:
            progress.update(
                task,
                completed=epoch,
                description=f"two-tower epoch {epoch}: valid recall@10 {metrics['recall@10']:.4f}",
            )

        trained, _ = train_on_split(
            split, catalog.items, catalog.users, text, train_config=config, progress=epoch_done
        )
        results.append(two_tower_result(trained, split, catalog.users, genres))
        progress.remove_task(task)

        runs = {}
        for stage_name in ("valid", "test"):
            stage = split.stage(stage_name)
            sources = build_sources(stage, split, catalog, text, trained.model)
            ctxs = contexts(stage, split, catalog.users)
            task = progress.add_task(f"candidate sources ({stage_name})", total=len(ctxs))
            run = run_sources(sources, ctxs, on_request=lambda t=task: progress.advance(t))
            runs[stage_name] = (run, ctxs, stage_targets(stage, split))
            progress.remove_task(task)
    preset, valid_scores = choose_quotas(*runs["valid"])
    per_source, pool = evaluate_pool(*runs["test"], QUOTA_PRESETS[preset])
    extra = {
        f"source.{name}.{k}": v for name, stats in per_source.items() for k, v in stats.items()
    }
    extra.update({f"pool.{k}": v for k, v in pool.items()})
    extra["TwoTower.train_seconds"] = trained.seconds
    section = _source_section(per_source, pool, preset, valid_scores)
    return Report(
        "Baselines, two-tower and candidate sources",
        dataset,
        split.stats,
        results,
        command,
        sections=[section],
        extra_metrics=extra,
    )
