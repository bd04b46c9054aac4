"""`marquee eval ranking`: every stage of the funnel on LOO-full, one report.

Rows: EASE (tuned on validation in the same run), the two-tower model alone
(retrieval only), the ranker over the merged pool, and the final feed (ranker +
default re-ranking rules). Sections: the stage table (pool recall, ranker AUC per
objective), the accuracy/diversity trade-off over the MMR lambda (with a plot),
the ml-100k new-user cold-start slice, and the same feed and baselines on the
global temporal split per slice (warm users, new users, new items; see
evaluation/temporal_eval.py for the protocol).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.progress import Progress

from catalog.paths import HasDataSources
from catalog.tables import load_catalog
from evaluation.baseline_run import tune_baselines
from evaluation.cold_start_eval import evaluate_new_users
from evaluation.ranking_eval import (
    DiversityPoint,
    RankingOutcome,
    diversity_sweep,
    run_ranker,
)
from evaluation.report import Report
from evaluation.runner import ModelResult
from evaluation.stage_report import StageData, prepare_stages
from evaluation.temporal_eval import TemporalResult, flat_metrics, run_temporal, temporal_data
from evaluation.two_tower_eval import two_tower_result
from ranking.rules import DEFAULT_LAMBDA, ItemMeta, feed_exploration
from retrieval.offline import cached_train_on_split
from retrieval.pipeline import text_vectors


def _pool_recall(data: StageData, stage: str) -> float:
    pools = data.pools[stage]
    hits = [
        any(c.item_id == t for c in pool)
        for pool, t in zip(pools.pools, pools.targets, strict=True)
    ]
    return float(np.mean(hits))


def _sweep_section(valid: list[DiversityPoint], test: list[DiversityPoint], base: float) -> str:
    rows = [
        "| lambda | valid NDCG@10 | valid ILD@10 | test NDCG@10 | test Recall@10 | test ILD@10 "
        "| test coverage@10 | test NDCG change vs ranker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, t in zip(valid, test, strict=True):
        change = (t.ndcg10 / base - 1) * 100
        rows.append(
            f"| {t.lambda_} | {v.ndcg10:.4f} | {v.ild10:.4f} | {t.ndcg10:.4f} | {t.recall10:.4f} "
            f"| {t.ild10:.4f} | {t.coverage10:.4f} | {change:+.1f}% |"
        )
    return "\n".join(rows)


def _plot_sweep(points: list[DiversityPoint], base: DiversityPoint, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p.ild10 for p in points], [p.ndcg10 for p in points], marker="o")
    for p in points:
        ax.annotate(f"λ={p.lambda_}", (p.ild10, p.ndcg10), fontsize=7)
    ax.scatter([base.ild10], [base.ndcg10], color="red", label="ranker, no diversity rule")
    ax.set_xlabel("intra-list diversity @10 (genre cosine distance)")
    ax.set_ylabel("NDCG@10 (test)")
    ax.set_title("Accuracy / diversity trade-off over the MMR lambda")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SPLITS = ("both", "loo", "temporal")


def run_ranking_report(
    dataset: str,
    settings: HasDataSources,
    command: str = "",
    splits: str = "loo",
    temporal_users: int = 0,
) -> Report:
    """Every stage measured in one run, so the rows share one split, pool and ranker.

    `splits` picks LOO-full, the temporal split or both; `temporal_users` > 0
    subsamples the temporal split's test users (and its inner training requests).
    """
    if splits not in SPLITS:
        raise ValueError(f"splits must be one of {SPLITS}")
    if splits == "temporal":
        return _temporal_only(dataset, settings, command, temporal_users)
    report = _loo_report(dataset, settings, command)
    if splits == "both":
        section, extra = temporal_section(dataset, settings, temporal_users)
        report.sections.extend(section)
        report.extra_metrics.update(extra)
    return report


def temporal_section(
    dataset: str, settings: HasDataSources, max_users: int = 0
) -> tuple[list[str], dict[str, float]]:
    """The temporal-split section (heading, table, protocol) and its flat metrics."""
    result = _temporal_result(dataset, settings, max_users)
    section = [
        f"## Temporal split: feed and baselines per slice (`{dataset}`)",
        result.markdown(DEFAULT_LAMBDA),
    ]
    return section, flat_metrics(result)


def _temporal_result(dataset: str, settings: HasDataSources, max_users: int) -> TemporalResult:
    catalog = load_catalog(dataset, settings)
    text = text_vectors(catalog, settings)
    data = temporal_data(catalog.events, dataset, max_users=max_users)
    two_tower = cached_train_on_split(
        data.split,
        catalog.items,
        catalog.users,
        text,
        Path(settings.artifacts_dir) / "models",
        catalog.version,
    )
    return run_temporal(catalog, text, data, two_tower.model, DEFAULT_LAMBDA)


def _temporal_only(dataset: str, settings: HasDataSources, command: str, max_users: int) -> Report:
    result = _temporal_result(dataset, settings, max_users)
    # Rows: the "all" slice; the other columns of the LOO table do not apply (NaN).
    blank = dict.fromkeys(("mrr@10", "auc", "coverage@10"), float("nan"))
    rows = [
        ModelResult(
            name,
            result.result_params(name),
            {"ndcg@10": float("nan")},
            {**blank, **by_slice["all"]},
        )
        for name, by_slice in result.metrics.items()
    ]
    return Report(
        "Stage-by-stage evaluation (temporal split)",
        dataset,
        result.data.split.stats,
        rows,
        command,
        sections=[
            f"## Temporal split: feed and baselines per slice (`{dataset}`)",
            result.markdown(DEFAULT_LAMBDA),
        ],
        extra_metrics=flat_metrics(result),
    )


def _loo_report(dataset: str, settings: HasDataSources, command: str) -> Report:
    with Progress(transient=True) as progress:
        data = prepare_stages(dataset, settings, progress=progress)
        ease = tune_baselines(data.split, data.genres, ["EASE"], progress)[0]
    two_tower = two_tower_result(data.two_tower, data.split, data.catalog.users, data.genres)
    outcome: RankingOutcome = run_ranker(
        data.pools["valid"],
        data.pools["test"],
        data.items["valid"],
        data.items["test"],
        data.split,
        data.genres,
        len(data.split.user_ids),
    )
    valid_sweep, test_sweep = _sweeps(data, outcome)
    feed = next(p for p in test_sweep if math.isclose(p.lambda_, DEFAULT_LAMBDA))
    explored = _explored_feed(data, outcome)
    rows = [ease, two_tower, _ranker_row(outcome), _feed_row(feed, valid_sweep)]
    rows.append(_feed_row(explored, valid_sweep, "Feed + exploration (seeded)"))
    cold = evaluate_new_users(load_catalog("ml-100k", settings))
    sections = [
        "## Stages (LOO-full test unless noted)",
        _stage_table(data, outcome, feed),
        "The ranker is trained on validation-stage pools (sources fitted on train events; "
        "the validation item is the positive, other retrieved items are negatives) of 80% "
        "of users; the other 20% early-stop it and choose the blend weights.",
        "## Accuracy / diversity trade-off (MMR lambda, genre cap 50% of the page)",
        _sweep_section(valid_sweep, test_sweep, outcome.metrics["ndcg@10"]),
        f"Validation = the 20% held-out users ({len(outcome.hold_users)}); ranker without "
        f"the rule: test NDCG@10 {outcome.metrics['ndcg@10']:.4f}, ILD@10 "
        f"{outcome.metrics['ild@10']:.4f}. Default lambda {DEFAULT_LAMBDA}.",
        "## Cold start: ml-100k new-user slice",
        cold.markdown(),
    ]
    extra = {f"Ranker.{k}": v for k, v in outcome.metrics.items()}
    extra.update({f"Feed.{k}": v for k, v in asdict(feed).items()})
    extra.update({f"FeedExplore.{k}": v for k, v in asdict(explored).items()})
    extra["pool.recall@500"] = _pool_recall(data, "test")
    report = Report(
        "Stage-by-stage evaluation",
        dataset,
        data.split.stats,
        rows,
        command,
        sections=sections,
        extra_metrics=extra,
    )
    base = DiversityPoint(
        1.0,
        outcome.metrics["ndcg@10"],
        outcome.metrics["recall@10"],
        outcome.metrics["ild@10"],
        outcome.metrics["coverage@10"],
    )
    report.extra_plots["diversity"] = lambda path: _plot_sweep(test_sweep, base, path)
    return report


def _sweeps(
    data: StageData, outcome: RankingOutcome
) -> tuple[list[DiversityPoint], list[DiversityPoint]]:
    """The MMR lambda sweep on the held-out validation users and on every test user."""
    meta = ItemMeta.from_frame(data.catalog.items)
    test_users = list(range(len(data.pools["test"].ctxs)))
    valid_sweep = diversity_sweep(
        outcome.hold_scores, data.pools["valid"], outcome.hold_users, meta, data.split, data.genres
    )
    test_sweep = diversity_sweep(
        outcome.test_scores, data.pools["test"], test_users, meta, data.split, data.genres
    )
    return valid_sweep, test_sweep


def _explored_feed(data: StageData, outcome: RankingOutcome) -> DiversityPoint:
    """The test feed with the serving exploration rule too (prior-only bandit, seeded per
    user and request time). Its draws come from the ranked pool: brand-new catalog items
    are left out offline, as no LOO target can be one."""
    meta = ItemMeta.from_frame(data.catalog.items)
    users = list(range(len(data.pools["test"].ctxs)))
    return diversity_sweep(
        outcome.test_scores,
        data.pools["test"],
        users,
        meta,
        data.split,
        data.genres,
        lambdas=(DEFAULT_LAMBDA,),
        exploration=feed_exploration(meta, ()),
    )[0]


def _ranker_row(outcome: RankingOutcome) -> ModelResult:
    return ModelResult(
        "Ranker",
        {
            "blend": "click" if outcome.blend.like == 0 else str(asdict(outcome.blend)),
            "epochs": outcome.best_epoch,
        },
        {"ndcg@10": float("nan")},
        outcome.metrics,
        [],
        outcome.train_seconds,
    )


def _feed_row(
    feed: DiversityPoint, valid_sweep: list[DiversityPoint], name: str = "Feed (ranker + rules)"
) -> ModelResult:
    """The served feed: the ranker with the serving rules (lambda DEFAULT_LAMBDA)."""
    return ModelResult(
        name,
        {"lambda": DEFAULT_LAMBDA},
        {"ndcg@10": next(p.ndcg10 for p in valid_sweep if p.lambda_ == DEFAULT_LAMBDA)},
        {
            "recall@10": feed.recall10,
            "ndcg@10": feed.ndcg10,
            "ild@10": feed.ild10,
            "coverage@10": feed.coverage10,
        },
    )


def _stage_table(data: StageData, outcome: RankingOutcome, feed: DiversityPoint) -> str:
    """One figure per funnel stage: pool recall, ranker AUCs and accuracy, the feed's."""
    return "\n".join(
        [
            "| stage | figure | value |",
            "|---|---|---|",
            f"| retrieval | merged pool Recall@500 (valid / test) | "
            f"{_pool_recall(data, 'valid'):.4f} / {_pool_recall(data, 'test'):.4f} |",
            *(
                f"| ranker | AUC {name} (test pools) | {outcome.metrics[f'auc_{name}']:.4f} |"
                for name in ("click", "complete", "like", "regret")
            ),
            f"| ranker | NDCG@10 / Recall@10 / MRR@10 | {outcome.metrics['ndcg@10']:.4f} / "
            f"{outcome.metrics['recall@10']:.4f} / {outcome.metrics['mrr@10']:.4f} |",
            f"| feed | NDCG@10 / Recall@10 with rules (lambda {DEFAULT_LAMBDA}) | "
            f"{feed.ndcg10:.4f} / {feed.recall10:.4f} |",
            f"| feed | coverage@10 / ILD@10 without -> with rules | "
            f"{outcome.metrics['coverage@10']:.4f} -> {feed.coverage10:.4f} / "
            f"{outcome.metrics['ild@10']:.4f} -> {feed.ild10:.4f} |",
        ]
    )
