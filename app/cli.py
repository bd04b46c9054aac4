"""The `marquee` command line: data -> eval (later train, index, serve, worker, bench).

Expected failures (bad data, bad arguments) print one clear line and exit non-zero;
tracebacks are reserved for bugs.
"""

from __future__ import annotations

import logging
import runpy
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markdown import Markdown
from rich.progress import Progress
from rich.table import Table

from app.cli_prompts import prompts_app
from app.cli_security import keys_app, refuse_unsafe_exposure, users_app
from app.cli_serving import ab_app, features_app, serve_cmd, worker_cmd
from app.errors import UsageError
from app.settings import Settings, get_settings
from catalog.errors import DataError
from catalog.sources import RATING_DATASETS
from evaluation.report import Report

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="Marquee: an LLM-augmented conversational movie recommender.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True)
eval_app = typer.Typer(help="Offline evaluation.", no_args_is_help=True)
train_app = typer.Typer(help="Train models into a versioned artifact bundle.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(features_app, name="features")
app.add_typer(ab_app, name="ab")
app.add_typer(prompts_app, name="prompts")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.command("serve")(serve_cmd)
app.command("worker")(worker_cmd)


def _datasets(dataset: str) -> list[str]:
    if dataset == "all":
        return list(RATING_DATASETS)
    if dataset not in RATING_DATASETS:
        raise UsageError(f"unknown dataset '{dataset}'; choose all or one of {RATING_DATASETS}")
    return [dataset]


@data_app.command("prepare")
def data_prepare(
    dataset: str = typer.Option("all", help="all, ml-latest-small or ml-100k"),
    rebuild: bool = typer.Option(False, help="Re-read raw files even if tables exist."),
) -> None:
    """Build the normalized Parquet tables (items, users, events with labels)."""
    from catalog.tables import catalog_dir, load_catalog

    settings = get_settings()
    names = _datasets(dataset)
    table = Table("dataset", "version", "items", "users", "events", "with overview", "folder")
    with Progress(transient=True) as progress:
        task = progress.add_task("preparing catalogs", total=len(names))
        for name in names:
            progress.update(task, description=f"preparing {name}")
            cat = load_catalog(name, settings, rebuild=rebuild)
            table.add_row(
                name,
                cat.version,
                f"{len(cat.items):,}",
                f"{len(cat.users):,}",
                f"{len(cat.events):,}",
                f"{int((cat.items['overview'] != '').sum()):,}",
                str(catalog_dir(name, settings)),
            )
            progress.advance(task)
    console.print(table)


@data_app.command("split")
def data_split(dataset: str = typer.Option("ml-latest-small")) -> None:
    """Show LOO-full and temporal split statistics."""
    from catalog.splits import loo_full, temporal_split
    from catalog.tables import load_catalog

    (name,) = _datasets(dataset)
    cat = load_catalog(name, get_settings())
    for split in (loo_full(cat.events, name), temporal_split(cat.events, name)):
        table = Table("statistic", "value", title=f"{split.name} on {name}")
        for key, value in split.stats.items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        console.print(table)


def _print_report(report: Report) -> None:
    console.print(report.stats_markdown())
    table = Table(
        "model",
        "params",
        "Recall@10",
        "NDCG@10",
        "MRR@10",
        "AUC",
        "Cov@10",
        title="LOO-full test (params tuned on validation)",
    )
    for r in report.results:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items() if k != "iterations")
        table.add_row(
            r.name,
            params or "-",
            *(f"{r.test[m]:.4f}" for m in ("recall@10", "ndcg@10", "mrr@10", "auc", "coverage@10")),
        )
    console.print(table)
    for section in report.sections:
        console.print(Markdown(section))


def _save_and_print(report: Report, folder: Path, stem: str) -> None:
    paths = report.save(folder, stem)
    _print_report(report)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")


def _run_report(runner: Callable[..., Report], dataset: str, out: Path | None, stem: str) -> None:
    """Run a report builder for one dataset, then save it as <stem>-<dataset>.*"""
    (name,) = _datasets(dataset)
    settings = get_settings()
    report = runner(name, settings, command="marquee " + shlex.join(sys.argv[1:]))
    _save_and_print(report, out or Path(settings.artifacts_dir) / "reports", f"{stem}-{name}")


@eval_app.command("baselines")
def eval_baselines(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
    models: str = typer.Option("", help="Comma-separated subset (default: all)."),
    out: Path = typer.Option(None, help="Report folder (default: <artifacts>/reports)."),
) -> None:
    """Tune every baseline on validation, test it, and write Markdown + JSON + PNG."""
    from evaluation.baseline_run import run_baselines

    (name,) = _datasets(dataset)
    settings = get_settings()
    chosen = [m.strip() for m in models.split(",") if m.strip()] or None
    command = "marquee " + shlex.join(sys.argv[1:])
    try:
        report = run_baselines(name, settings, chosen, command=command)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _save_and_print(report, out or Path(settings.artifacts_dir) / "reports", "baselines-" + name)


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
    out: Path = typer.Option(None, help="Report folder (default: <artifacts>/reports)."),
) -> None:
    """Baselines + two-tower + every candidate source and the merged pool, one LOO-full run."""
    from evaluation.quality_run import run_quality_report

    def quality(name: str, settings: Settings, **kwargs: Any) -> Report:
        return run_quality_report(name, settings, seed=settings.seed, **kwargs)

    _run_report(quality, dataset, out, "retrieval")


@eval_app.command("ranking")
def eval_ranking(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
    out: Path = typer.Option(None, help="Report folder (default: <artifacts>/reports)."),
    split: str = typer.Option(
        "both", help="loo (LOO-full), temporal (global time cut, per slice) or both."
    ),
    temporal_users: int = typer.Option(
        0, min=0, help="Subsample the temporal split's test users to this many (0 = all)."
    ),
) -> None:
    """Every stage on LOO-full and the temporal split: pools, ranker, feed, slices, baselines."""
    from functools import partial

    from evaluation.ranking_report import SPLITS, run_ranking_report

    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; choose one of {SPLITS}")
    runner = partial(run_ranking_report, splits=split, temporal_users=temporal_users)
    stem = "ranking" if split == "both" else f"ranking-{split}"
    _run_report(runner, dataset, out, stem)


@train_app.command("retrieval")
def train_retrieval(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
    max_epochs: int = typer.Option(
        60, min=1, help="Upper bound; early stopping usually ends sooner."
    ),
    max_seconds: float = typer.Option(
        600.0, min=1.0, help="Wall-clock safety net; early stopping normally ends sooner."
    ),
) -> None:
    """Train the two-tower model, build its ANN index, save a bundle (artifacts/bundles)."""
    from catalog.tables import load_catalog
    from retrieval.pipeline import save_bundle, text_vectors, train_retrieval_bundle
    from retrieval.training import TrainConfig

    (name,) = _datasets(dataset)
    settings = get_settings()
    catalog = load_catalog(name, settings)
    with console.status("embedding item text (cached per catalog version)"):
        text_vectors(catalog, settings)
    config = TrainConfig(max_epochs=max_epochs, max_seconds=max_seconds, seed=settings.seed)
    with Progress(console=console) as progress:
        task = progress.add_task("training two-tower", total=max_epochs)

        def report(epoch: int, loss: float, metrics: dict[str, float]) -> None:
            progress.update(
                task,
                completed=epoch,
                description=f"epoch {epoch} loss {loss:.3f} "
                f"valid recall@10 {metrics['recall@10']:.4f}",
            )

        bundle = train_retrieval_bundle(catalog, settings, train_config=config, progress=report)
    folder = save_bundle(bundle, settings)
    meta = bundle.meta
    console.print(
        f"best epoch {meta['best_epoch']} of {meta['epochs_run']} in {meta['train_seconds']}s; "
        f"validation recall@10 {meta['validation']['recall@10']:.4f}, "
        f"ndcg@10 {meta['validation']['ndcg@10']:.4f}"
    )
    console.print(f"bundle: {folder}")


@train_app.command("ranker")
def train_ranker_cmd(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
) -> None:
    """Train the multi-task ranker on real retrieval outcomes into the latest bundle."""
    from catalog.tables import load_catalog
    from ranking.pipeline import save_ranker, train_ranker_bundle
    from retrieval.bundle import RetrievalBundle
    from retrieval.pipeline import latest_bundle

    (name,) = _datasets(dataset)
    settings = get_settings()
    folder = latest_bundle(settings, name)
    if folder is None:
        raise UsageError(f"no retrieval bundle for {name}; run `marquee train retrieval` first")
    catalog = load_catalog(name, settings)
    with console.status("retrieving candidate pools and training the ranker"):
        fitted, items = train_ranker_bundle(
            catalog, settings, RetrievalBundle.load(folder / "retrieval")
        )
    meta = {"dataset": name, "catalog_version": catalog.version}
    save_ranker(fitted, items, folder / "ranking", meta)
    console.print(
        f"ranker: best epoch {fitted.best_epoch}, {fitted.seconds:.1f}s; held-out NDCG@10 "
        f"{fitted.hold_ndcg10:.4f}; blend {fitted.blend}"
    )
    console.print(f"bundle: {folder}")


@app.command("index")
def index(
    dataset: str = typer.Option("ml-latest-small", help="ml-latest-small or ml-100k"),
    kind: str = typer.Option("auto", help="auto, exact, hnsw or ivfpq"),
    queries: int = typer.Option(200, min=1, help="Item vectors used as probe queries."),
) -> None:
    """Rebuild the latest bundle's ANN index and measure its recall against exact search."""
    import faiss
    import numpy as np

    from retrieval.ann import KINDS, AnnIndex, ann_recall
    from retrieval.bundle import RetrievalBundle
    from retrieval.pipeline import latest_bundle

    if kind != "auto" and kind not in KINDS:
        raise UsageError(f"unknown index kind '{kind}'; choose auto or one of {KINDS}")
    (name,) = _datasets(dataset)
    folder = latest_bundle(get_settings(), name)
    if folder is None:
        raise UsageError(f"no retrieval bundle for {name}; run `marquee train retrieval` first")
    bundle = RetrievalBundle.load(folder / "retrieval")
    old = bundle.index
    if old is None:
        raise UsageError(f"bundle {folder} has no index; retrain it")
    ids = faiss.vector_to_array(old.index.id_map).astype(np.int64)
    vectors = np.vstack([old.index.reconstruct(int(i)) for i in ids]).astype(np.float32)
    with console.status(f"building {kind} index over {len(ids):,} items"):
        try:
            new = AnnIndex.build(vectors, ids, kind=kind)  # type: ignore[arg-type]
        except ValueError as exc:  # e.g. too few items to train IVF-PQ codebooks
            raise UsageError(str(exc)) from None
    exact = AnnIndex.build(vectors, ids, kind="exact")
    rng = np.random.default_rng(0)
    probe = vectors[rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)]
    k = min(100, len(ids))
    recall = ann_recall(new.search(probe, k)[1], exact.search(probe, k)[1], k)
    new.save(folder / "retrieval" / "index.faiss")
    console.print(f"{new.kind} index, {len(new):,} items, recall@{k} vs exact {recall:.4f}")


@app.command("up")
def up(
    refresh: bool = typer.Option(False, help="Re-run the baseline evaluation even if cached."),
    serve: bool = typer.Option(True, help="Serve the API after preparing (--no-serve: stop)."),
) -> None:
    """Bring the product up: prepare data, train the default models if none exist, serve.

    One entry point for the README's run command: each step is skipped when its
    output already exists, so a second run goes straight to serving.
    """
    from retrieval.pipeline import latest_bundle

    settings = get_settings()
    if serve:  # before minutes of preparation, not after
        refuse_unsafe_exposure(settings, settings.host)
    data_prepare(dataset="all", rebuild=False)
    bundle = latest_bundle(settings, "ml-latest-small")
    if bundle is None:
        train_retrieval(dataset="ml-latest-small", max_epochs=60, max_seconds=600.0)
        bundle = latest_bundle(settings, "ml-latest-small")
    if bundle is not None and not (bundle / "ranking" / "net.pt").is_file():
        train_ranker_cmd(dataset="ml-latest-small")
    report = Path(settings.artifacts_dir) / "reports" / "baselines-ml-latest-small.md"
    if refresh or not report.is_file():
        eval_baselines(dataset="ml-latest-small", models="", out=None)
    else:
        console.print(report.read_text())
        console.print(f"(cached report {report}; `marquee up --refresh` re-runs it)")
    if serve:
        serve_cmd(host=None, port=None, workers=1, with_worker=True)


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Benchmark under bench/, e.g. quality"),
) -> None:
    """Run a benchmark script from bench/ (run from the repository root); extra args pass on."""
    script = Path("bench") / f"{name}.py"
    if not script.is_file():
        available = sorted(p.stem for p in Path("bench").glob("*.py") if not p.stem.startswith("_"))
        raise UsageError(f"no benchmark '{name}' in ./bench; available: {available}")
    sys.argv = [str(script), *ctx.args]
    runpy.run_path(str(script), run_name="__main__")


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=err_console)]
    )
    logging.getLogger("marquee").setLevel(logging.INFO)
    try:
        app()
    except DataError as exc:
        err_console.print(f"[bold red]data error:[/] {exc}")
        raise SystemExit(2) from None
    except UsageError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
